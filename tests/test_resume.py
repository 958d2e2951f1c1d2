"""Checkpoints and resuming: exact continuation, no leftovers, loud failures, refused changes."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from deeppot_galpy.checkpoint import (
    Checkpoint,
    ResumeError,
    clean_stale,
    restore_training_state,
    training_state,
)
from deeppot_galpy.cli import main
from deeppot_galpy.config import PRESETS, FitOptions
from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.pipeline import fit, run_demo
from deeppot_galpy.potential import CBEPoints, PotentialConfig, PotentialTraining, fit_potential
from deeppot_galpy.rundir import ModelFileError

SMALL = FlowConfig(steps=2, bins=6, hidden=(16, 16))
REPO = Path(__file__).resolve().parents[1]


class Killed(Exception):
    """Stands for a kill: raised right after a checkpoint was committed."""


class KilledAfter(Checkpoint):
    """A Checkpoint whose process 'dies' after ``n`` saves."""

    def __init__(self, *args, n: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.n = n

    def save(self, tensors, state):
        super().save(tensors, state)
        self.n -= 1
        if self.n == 0:
            raise Killed


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)


def _without_seconds(h: dict) -> dict:
    return {k: v for k, v in h.items() if k != "seconds"}


def test_flow_training_resumes_exactly(tmp_path):
    ps = Plummer().sample(2048, 0)
    cfg = FlowTraining(epochs=5, batch_size=256)

    def ensemble():
        return FlowEnsemble(ps.standardization(), k=2, config=SMALL)

    ref = ensemble()
    ref_hist = ref.fit(ps, cfg, seed=3, progress=False)

    with pytest.raises(Killed):  # member 0 finishes, member 1 dies after 2 of 5 epochs
        ensemble().fit(
            ps,
            cfg,
            seed=3,
            progress=False,
            checkpoints=lambda k: KilledAfter(tmp_path, f"m{k}", n=[99, 2][k]),
        )
    assert json.loads((tmp_path / "m0.json").read_text())["state"]["done"]
    assert json.loads((tmp_path / "m1.json").read_text())["state"]["epoch"] == 2

    resumed = ensemble()
    hist = resumed.fit(ps, cfg, 3, False, checkpoints=lambda k: Checkpoint(tmp_path, f"m{k}"))
    _same_weights(resumed, ref)
    assert [_without_seconds(h) for h in hist] == [_without_seconds(h) for h in ref_hist]
    # 4 epoch checkpoints + the final one, each deleting the file it superseded
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m0.000005.safetensors",
        "m0.json",
        "m1.000005.safetensors",
        "m1.json",
    ]


def test_finished_members_are_loaded_not_retrained(tmp_path, monkeypatch):
    ps = Plummer().sample(1024, 0)
    cfg = FlowTraining(epochs=2, batch_size=256)
    ref = FlowEnsemble(ps.standardization(), k=2, config=SMALL)
    ref.fit(ps, cfg, 0, False, checkpoints=lambda k: Checkpoint(tmp_path, f"m{k}"))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished member was trained again")

    monkeypatch.setattr(torch.optim.Adam, "step", no_training)
    again = FlowEnsemble(ps.standardization(), k=2, config=SMALL)
    again.fit(ps, cfg, 0, False, checkpoints=lambda k: Checkpoint(tmp_path, f"m{k}"))
    _same_weights(again, ref)


def _points(n: int = 2048) -> CBEPoints:
    m = Plummer()
    ps = m.sample(n, seed=1)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    return CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))


def test_potential_training_resumes_exactly(tmp_path):
    pts = _points()
    cfg = PotentialTraining(steps=120, batch_size=128, config=PotentialConfig((32, 32)))
    ref, ref_hist = fit_potential(pts, cfg, seed=2, progress=False)
    with pytest.raises(Killed):
        fit_potential(pts, cfg, 2, progress=False, checkpoint=KilledAfter(tmp_path, "p", 50, n=2))
    assert json.loads((tmp_path / "p.json").read_text())["state"]["step"] == 100
    net, hist = fit_potential(pts, cfg, 2, progress=False, checkpoint=Checkpoint(tmp_path, "p", 50))
    _same_weights(net, ref)
    assert _without_seconds(hist) == _without_seconds(ref_hist)


def test_optimizer_and_rng_state_round_trip_without_pickle(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    gen = torch.Generator().manual_seed(5)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt = Checkpoint(tmp_path, "x")
    ckpt.save(*training_state(model, opt, gen))
    expected = (torch.randn(3), torch.rand(2, generator=gen))
    raw = (tmp_path / "x.000001.safetensors").read_bytes()
    assert not raw.startswith(b"\x80")  # safetensors: a JSON header, no pickle
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    gen2 = torch.Generator()
    restore_training_state(*Checkpoint(tmp_path, "x").load(), model2, opt2, gen2)
    _same_weights(model2, model)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.param_groups[0]["lr"] == 0.1
    for p, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(opt2.state[p2][key], opt.state[p][key], rtol=0, atol=0)
    torch.testing.assert_close((torch.randn(3), torch.rand(2, generator=gen2)), expected)


@pytest.fixture
def saved(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    gen = torch.Generator()
    ckpt = Checkpoint(tmp_path / "checkpoints", "c")
    for epoch in (1, 2):
        tensors, state = training_state(model, opt, gen)
        ckpt.save(tensors, state | {"epoch": epoch})
    return tmp_path / "checkpoints"


def test_truncated_or_edited_checkpoints_are_errors_not_restarts(saved):
    weights = saved / "c.000002.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[:-10])
    with pytest.raises(ModelFileError, match="corrupt, truncated"):
        Checkpoint(saved, "c").load()
    weights.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ModelFileError, match="corrupt, truncated"):
        Checkpoint(saved, "c").load()
    weights.write_bytes(blob)
    record = saved / "c.json"
    text = record.read_text()
    record.write_text(text.replace('"epoch": 2', '"epoch": 7'))
    with pytest.raises(ModelFileError, match="edited or corrupted"):
        Checkpoint(saved, "c").load()
    record.write_text(text[: len(text) // 2])
    with pytest.raises(ModelFileError, match="not valid JSON"):
        Checkpoint(saved, "c").load()
    record.write_text(text)
    assert Checkpoint(saved, "c").load()[1]["epoch"] == 2


def test_a_kill_between_writes_leaves_the_last_commit(saved):
    # killed after writing the next tensors file but before committing it, and mid-write
    (saved / "c.000003.safetensors").write_bytes(b"uncommitted")
    (saved / ".c.json.abc123.tmp").write_bytes(b"half a rec")
    assert Checkpoint(saved, "c").load()[1]["epoch"] == 2
    removed = clean_stale(saved.parent)
    assert sorted(p.name for p in removed) == [".c.json.abc123.tmp", "c.000003.safetensors"]
    assert sorted(p.name for p in saved.iterdir()) == ["c.000002.safetensors", "c.json"]


# --- the pipeline: kill -9 a real process, resume it, compare with an uninterrupted run ----

CONFIG = """
preset = "test"
figures = false
[potential]
steps = 100
[checkpoint]
flow_epochs = 1
potential_steps = 20
"""


def _demo(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "deeppot_galpy", "demo", "--quiet", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in this process (same code, same single thread)."""
    out = tmp_path_factory.mktemp("reference")
    cfg = replace(PRESETS["test"], potential=replace(PRESETS["test"].potential, steps=100))
    run_demo(out, cfg, options=FitOptions(progress=False, figures=False))
    return out


@pytest.mark.parametrize("stage", [pytest.param("flows", marks=pytest.mark.slow), "potential"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, reference, stage):
    (tmp_path / "cfg.toml").write_text(CONFIG)
    out = tmp_path / "run"
    proc = _demo("--config", str(tmp_path / "cfg.toml"), "--out", str(out))
    marker = "flows.member0.json" if stage == "flows" else "potential.json"
    _wait_for(out / "checkpoints" / marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "checkpoints" / marker).read_text())["state"]
    assert not state["done"] and not (out / "metrics.json").exists()

    resumed = _demo("--resume", str(out))
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr.decode()[-3000:]
    for name in ("flows.safetensors", "potential.safetensors"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert json.loads((out / "run.json").read_text())["resumed"]
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and not (out / "checkpoints").exists()


def test_resume_refuses_other_settings_or_data(tmp_path, capsys):
    out = tmp_path / "run"
    ps = Plummer().sample(2**11, 0)
    cfg = replace(PRESETS["test"], potential=replace(PRESETS["test"].potential, steps=100))
    opts = FitOptions(seed=1, progress=False, figures=False)
    metrics = fit(ps, out, cfg, options=opts)
    resume = replace(opts, resume=True)
    # a finished run resumes to its stored result
    assert fit(ps, out, cfg, options=resume) == metrics

    slower = replace(cfg, flow_training=replace(cfg.flow_training, epochs=9))
    with pytest.raises(ResumeError, match=r"config\.flow_training\.epochs: 4 in the run, now 9"):
        fit(ps, out, slower, options=resume)
    with pytest.raises(ResumeError, match=r"data\.sha256"):
        fit(Plummer().sample(2**11, 5), out, cfg, options=resume)
    with pytest.raises(ResumeError, match=r"seed: 1 in the run, now 2"):
        fit(ps, out, cfg, options=replace(resume, seed=2))
    # an unfinished run is not silently overwritten by a fresh one
    (out / "metrics.json").unlink()
    with pytest.raises(FileExistsError, match="unfinished run"):
        fit(ps, out, cfg, options=opts)
    with pytest.raises(ValueError, match="nothing to resume"):
        fit(ps, tmp_path / "empty", cfg, options=resume)


def test_cli_resume_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "cfg.toml").write_text(CONFIG.replace("steps = 100", "steps = 20"))
    out = tmp_path / "run"
    assert main(["demo", "--quiet", "--config", str(tmp_path / "cfg.toml"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["demo", "--quiet", "--resume", str(out), "--n-flows", "2"]) == 2
    err = capsys.readouterr().err
    assert "config.n_flows: 1 in the run, now 2" in err and "Traceback" not in err
    assert main(["fit", "--quiet", "--resume", str(out)]) == 2
    assert "started by `deeppot demo`, not `deeppot fit`" in capsys.readouterr().err
    assert main(["demo", "--resume", str(tmp_path)]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # a corrupt run: reported in one line too
    (out / "metrics.json").unlink()
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "potential.json").write_text("{")
    assert main(["demo", "--quiet", "--resume", str(out)]) == 2
    assert "potential.json is not valid JSON" in capsys.readouterr().err
