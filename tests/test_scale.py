"""Large catalogs: memory-mapped star arrays train like in-memory ones, end to end."""

import json

import numpy as np
import torch

from deeppot_galpy.cli import main
from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.df.ensemble import StarBatches
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.phasespace import PhaseSpace

SMALL = FlowConfig(steps=2, bins=6, hidden=(16, 16))


def test_memory_mapped_stars_train_like_phase_space(tmp_path):
    ps = Plummer().sample(2048, 0)
    np.save(tmp_path / "stars.npy", ps.eta.astype(np.float32))
    eta = np.load(tmp_path / "stars.npy", mmap_mode="r")
    cfg = FlowTraining(epochs=2, batch_size=256, bootstrap=True)
    ref = FlowEnsemble(ps.standardization(), k=2, config=SMALL)
    ref.fit(PhaseSpace.from_eta(np.asarray(eta, np.float64)), cfg, 0, False)
    streamed = FlowEnsemble(ps.standardization(), k=2, config=SMALL)
    streamed.fit(eta, cfg, 0, False)  # read batch by batch (StarBatches), never copied whole
    for a, b in zip(streamed.parameters(), ref.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_star_batches_read_only_the_rows_asked_for():
    eta = np.arange(60.0).reshape(10, 6)
    batches = StarBatches(eta, np.array([7, 2, 5]), "cpu")
    out = batches[torch.tensor([2, 0])]
    assert out.dtype == torch.float32 and len(batches) == 3
    np.testing.assert_array_equal(out.numpy(), eta[[5, 7]])


def test_a_time_budget_ends_an_epoch_early():
    ps = Plummer().sample(4096, 0)
    ens = FlowEnsemble(ps.standardization(), k=1, config=SMALL)
    cfg = FlowTraining(epochs=3, batch_size=256, time_budget_s=1e-9)
    (hist,) = ens.fit(ps, cfg, 0, False)
    assert len(hist["epoch"]) == 1  # stopped inside the first epoch, not after three


def test_fit_a_npy_catalog_from_the_cli(tmp_path, capsys):
    # Galactocentric kpc, km/s: a Plummer sphere scaled to a 1 kpc, 30 km/s cluster
    ps = Plummer().sample(2**12, 0)
    np.save(tmp_path / "stars.npy", np.concatenate([ps.x, 30 * ps.v], axis=1))
    out = tmp_path / "run"
    argv = ["fit", str(tmp_path / "stars.npy"), "--out", str(out), "--preset", "test"]
    assert main([*argv, "--no-figures", "--quiet"]) == 0
    assert "no cuts" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["units"]["length"] == "kpc" and run["data"]["n_stars"] == 2**12
    assert run["data"]["meta"]["frame"]["galcen_distance_kpc"] > 8
    assert (out / "potential.safetensors").exists() and not (out / "checkpoints").exists()
