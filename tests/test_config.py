"""The TOML config: every stage's options, CLI overrides, and clear messages for mistakes."""

import pytest
import torch

from deeppot_galpy.checkpoint import CheckpointPolicy
from deeppot_galpy.cli import main
from deeppot_galpy.config import PRESETS, FitOptions, load_config, parse_config
from deeppot_galpy.data import FrameParameters, QualityCuts
from deeppot_galpy.device import map_batches, parse_device, resolve_device
from deeppot_galpy.potential import PotentialConfig


def test_every_stage_is_configurable(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        """
preset = "test"
seed = 3
device = "cuda:1"
nproc = 2
figures = false
[fit]
n_flows = 2
n_points = 1024
threads = 2
[flow]
hidden = [8, 8]
[flow_training]
epochs = 7
time_budget_s = 60.5
[potential]
steps = 50
loss = "f"
[potential.network]
activation = "tanh"
symmetry = "spherical"
[checkpoint]
flow_epochs = 2
potential_steps = 10
seconds = 30
[frame]
galcen_distance_kpc = 8.2
[cuts]
min_stars = 10
"""
    )
    cfg = load_config(path)
    opts = cfg.options
    assert (opts.seed, opts.device, cfg.nproc, opts.figures) == (3, "cuda:1", 2, False)
    assert (cfg.fit.n_flows, cfg.fit.n_points, cfg.fit.threads) == (2, 1024, 2)
    assert cfg.fit.flow.hidden == (8, 8) and cfg.fit.flow_training.epochs == 7
    assert cfg.fit.flow_training.time_budget_s == 60.5  # the preset's 300 is no int-only field
    assert cfg.fit.potential.steps == 50 and cfg.fit.potential.config.activation == "tanh"
    assert cfg.fit.potential.config.symmetry == "spherical"
    assert opts.checkpoints == CheckpointPolicy(flow_epochs=2, potential_steps=10, seconds=30.0)
    # frame and cuts are parsed once, here, into the objects the catalog reader takes
    assert cfg.frame == FrameParameters(galcen_distance=8.2)
    assert cfg.cuts == QualityCuts(min_stars=10)
    # untouched settings come from the preset
    assert cfg.fit.flow_training.batch_size == PRESETS["test"].flow_training.batch_size


def test_the_presets_choose_the_symmetry_from_the_stars():
    from deeppot_galpy.potential import PotentialNet

    assert {p.potential.config.symmetry for p in PRESETS.values()} == {"auto"}
    assert parse_config({}).fit.potential.config.symmetry == "auto"
    assert PotentialConfig().symmetry == "none"  # the API's network, built directly
    with pytest.raises(ValueError, match="chosen from the stars"):
        PotentialNet(torch.zeros(3), 1.0, 1.0, PotentialConfig(symmetry="auto"))


def test_flags_override_the_file_and_are_recorded():
    raw = {"preset": "paper", "seed": 1, "flow_training": {"epochs": 7}}
    raw |= {"potential": {"network": {"activation": "tanh"}}}
    cfg = parse_config(
        raw,
        preset="test",
        seed=5,
        device=None,
        fit={"n_flows": 3},
        potential={"replicates": None, "network": {"symmetry": "axisymmetric"}},
    )
    # a nested flag (--symmetry) merges into the file's table instead of replacing it
    assert cfg.fit.potential.config == PotentialConfig(activation="tanh", symmetry="axisymmetric")
    assert cfg.options.seed == 5 and cfg.options.device == "cpu"
    assert cfg.frame is None and cfg.cuts is None  # the defaults
    # the preset flag swaps the base; the file's tables still apply on top of it
    assert cfg.fit.n_points == PRESETS["test"].n_points and cfg.fit.flow_training.epochs == 7
    assert cfg.fit.n_flows == 3
    assert cfg.raw == {
        "preset": "test",
        "seed": 5,
        "flow_training": {"epochs": 7},
        "fit": {"n_flows": 3},
        "potential": {"network": {"activation": "tanh", "symmetry": "axisymmetric"}},
    }
    assert parse_config(cfg.raw) == cfg  # what a run records is enough to rebuild it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sed": 1}, r"unknown config keys \['sed'\]; allowed: .*'seed'"),
        ({"flow_training": {"epoch": 3}}, r"unknown key 'epoch' in \[flow_training\]"),
        ({"potential": {"network": {"width": 3}}}, r"unknown key 'width' in \[potential.network\]"),
        ({"checkpoint": {"every": 3}}, r"unknown key 'every' in \[checkpoint\]; allowed: .*"),
        ({"fit": {"flow": {}}}, r"unknown key\(s\) \['flow'\] in \[fit\]"),
        ({"flow_training": {"epochs": "ten"}}, r"epochs = 'ten': expected int, got str"),
        ({"flow_training": {"epochs": 0}}, r"epochs, batch_size and patience >= 1"),
        ({"flow_training": {"val_fraction": 1.5}}, r"val_fraction must be in \(0, 1\)"),
        ({"flow_training": {"time_budget_s": "soon"}}, r"time_budget_s = 'soon': expected a num"),
        ({"flow_training": {"time_budget_s": -1}}, r"time_budget_s must be >= 0"),
        ({"potential": {"lr": -1}}, r"lr > 0"),
        ({"potential": {"loss": "l2"}}, r"unknown loss 'l2'"),
        ({"potential": {"network": {"symmetry": "cylinder"}}}, r"symmetry 'cylinder' not supp"),
        ({"potential": {"jeans_neighbours": [0.02, 0.002]}}, r"\(min, max\) range"),
        ({"potential": {"jeans_neighbours": 2}}, r"jeans_neighbours must be in \(0, 1\]"),
        ({"potential": {"jeans_shells": [0.5, 0.1]}}, r"jeans_shells must be in \(0, 1\]"),
        ({"potential": {"jeans_stars": 0}}, r"jeans_stars must be >= 1"),
        ({"potential": {"replicates": 1}}, r"a spread needs two"),
        ({"fit": {"n_points": 0}}, r"n_points must be >= 1"),
        ({"fit": {"threads": -1}}, r"threads must be an integer >= 0"),
        ({"checkpoint": {"potential_steps": 0}}, r"checkpoint intervals must be positive"),
        ({"nproc": 0}, r"nproc >= 1"),
        ({"seed": True}, r"seed = True: expected int"),
        ({"figures": "no"}, r"figures = 'no': expected bool"),
        ({"device": "gpu"}, r"device = 'gpu': unknown device"),
        ({"device": "mps"}, r"device 'mps' is not supported"),
        ({"preset": "huge"}, r"unknown preset 'huge'"),
        ({"frame": 3}, r"\[frame\] must be a table"),
        ({"frame": {"R0": 8}}, r"invalid \[frame\]: unknown frame parameter"),
        ({"cuts": {"min_stars": 0}}, r"invalid \[cuts\]: min_stars must be >= 1"),
    ],
)
def test_mistakes_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_config(raw)


def test_fit_options_refuse_contradictions():
    assert FitOptions().overwrite is False  # a run is never replaced unasked
    with pytest.raises(ValueError, match="resume or overwrite a run, not both"):
        FitOptions(resume=True, overwrite=True)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        FitOptions(seed=-1)
    with pytest.raises(ValueError, match="checkpoints must be a CheckpointPolicy"):
        FitOptions(checkpoints={"seconds": 3})


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("seed = = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_cli_reports_config_mistakes_in_one_line(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[flow_training]\nepochs = -2\n")
    rc = main(["demo", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "epochs, batch_size and patience >= 1" in err and "Traceback" not in err
    assert main(["demo", "--size", "test"]) == 2
    assert "give --out RUN_DIR for a new run, or --resume RUN_DIR" in capsys.readouterr().err
    assert main(["fit", "--out", str(tmp_path / "r")]) == 2
    assert "give the CATALOG to fit" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_devices_are_checked_before_any_work():
    assert parse_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="use cpu, cuda or cuda:N"):
        parse_device("cuda:x")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")


def test_batches_shrink_when_the_device_runs_out_of_memory():
    seen = []
    out = torch.zeros(1000)

    def work(rows: slice) -> None:
        seen.append(rows.stop - rows.start)
        if rows.stop - rows.start > 300:  # stands for a GPU with room for 300 rows
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        out[rows] = torch.arange(rows.start, rows.stop, dtype=torch.float32)

    assert map_batches(work, 1000, 1024) == 256
    assert seen[:3] == [1000, 512, 256]
    torch.testing.assert_close(out, torch.arange(1000, dtype=torch.float32))

    def never_fits(rows: slice) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        map_batches(never_fits, 10, 4)
