"""Two processes (gloo on CPU) give the one-process result: same members, same potential."""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from deeppot_galpy import distributed
from deeppot_galpy.config import PRESETS, FitOptions
from deeppot_galpy.df import FlowConfig
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.pipeline import fit
from deeppot_galpy.potential import CBEPoints, PotentialConfig, PotentialTraining, fit_potential
from deeppot_galpy.rundir import RunDir, read_tensors, write_tensors

pytestmark = pytest.mark.timeout(600)  # a wedged collective fails the test, not the suite

# 3 members on 2 ranks: rank 0 trains members 0 and 2, rank 1 member 1
CONFIG = replace(
    PRESETS["test"],
    n_flows=3,
    flow=FlowConfig(steps=2, bins=6, hidden=(16, 16)),
    flow_training=replace(PRESETS["test"].flow_training, epochs=2),
    potential=replace(PRESETS["test"].potential, steps=40),
)
OPTIONS = FitOptions(seed=0, progress=False, figures=False)
POTENTIAL = PotentialTraining(
    steps=20, batch_size=255, time_budget_s=1000.0, config=PotentialConfig((32, 32))
)


def _points() -> CBEPoints:
    m = Plummer()
    ps = m.sample(2048, seed=1)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    return CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))


def _job(folder: str) -> None:
    """One rank's work; runs in a spawned worker (see distributed.launch)."""
    torch.set_num_threads(1)
    distributed.join("cpu")
    job = distributed.current()
    # collectives: uneven shards, JSON, a module with a bool buffer
    rows = np.arange(3 * (job.rank + 1) * 2, dtype=np.float64).reshape(-1, 2) + 100 * job.rank
    gathered = distributed.all_gather_rows(rows)
    msg = distributed.broadcast_json({"from": job.rank, "x": [1.5, float("inf")]}, src=1)
    mod = torch.nn.Module()
    mod.register_buffer("w", torch.full((3,), float(job.rank)))
    mod.register_buffer("mask", torch.tensor([True, job.rank == 1]))
    distributed.broadcast_state(mod, src=1)
    # data-parallel potential alone (the batch of 255 splits 128 + 127)
    net, _ = fit_potential(_points(), POTENTIAL, seed=4, progress=False)
    if job.is_main:
        write_tensors(f"{folder}/potential.safetensors", net.state_dict())
        record = {
            "world": job.world,
            "gathered": gathered.tolist(),
            "msg": msg,
            "w": mod.w.tolist(),
            "mask": mod.mask.tolist(),
        }
        (RunDir(folder).path / "collectives.json").write_text(json.dumps(record))
    # the whole pipeline, in the same job
    ps = Plummer().sample(CONFIG.n_stars, 0)
    fit(ps, f"{folder}/run", CONFIG, options=OPTIONS)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_ranks")
    distributed.launch(2, _job, str(folder))
    return folder


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_rank")
    ps = Plummer().sample(CONFIG.n_stars, 0)
    fit(ps, folder / "run", CONFIG, options=OPTIONS)
    net, _ = fit_potential(_points(), POTENTIAL, seed=4, progress=False)
    return folder, net


def test_collectives(two_ranks):
    rec = json.loads((two_ranks / "collectives.json").read_text())
    assert rec["world"] == 2
    expected = np.concatenate([np.arange(6.0).reshape(3, 2), np.arange(12.0).reshape(6, 2) + 100])
    np.testing.assert_array_equal(rec["gathered"], expected)
    assert rec["msg"] == {"from": 1, "x": [1.5, float("inf")]}
    assert rec["w"] == [1.0, 1.0, 1.0] and rec["mask"] == [True, True]


def test_two_processes_train_the_same_members(two_ranks, one_rank):
    a = (two_ranks / "run" / "flows.safetensors").read_bytes()
    b = (one_rank[0] / "run" / "flows.safetensors").read_bytes()
    assert a == b  # bit for bit: member k depends on seed + k only
    two = json.loads((two_ranks / "run" / "flows.json").read_text())["metadata"]["histories"]
    one = json.loads((one_rank[0] / "run" / "flows.json").read_text())["metadata"]["histories"]
    assert [h["val_nll"] for h in two] == [h["val_nll"] for h in one]


def test_two_processes_fit_the_same_potential(two_ranks, one_rank):
    # the same optimisation, the gradient summed in another order: agreement to float noise
    path = two_ranks / "potential.safetensors"
    ddp = read_tensors(path, hashlib.sha256(path.read_bytes()).hexdigest(), "test")
    for k, v in one_rank[1].state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=0, atol=2e-5)
    m2 = json.loads((two_ranks / "run" / "metrics.json").read_text())
    m1 = json.loads((one_rank[0] / "run" / "metrics.json").read_text())
    assert m2["points"] == m1["points"]
    run2 = json.loads((two_ranks / "run" / "run.json").read_text())
    assert run2["processes"] == 2
    # rank 0 alone wrote the run directory, and the checkpoints are gone
    assert not (two_ranks / "run" / "checkpoints").exists()


def test_worker_errors_reach_the_launcher_as_such():
    # int("x") raises ValueError in both workers (a builtin: the workers import nothing more)
    with pytest.raises(ValueError, match="invalid literal for int"):
        distributed.launch(2, int, "x")
