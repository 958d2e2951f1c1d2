"""A finished run is never overwritten unasked (issue 15, item 6): refused byte for byte, replaced
only with --overwrite / overwrite=True, and still readable with --resume."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from deeppot_galpy.cli import main
from deeppot_galpy.config import PRESETS, FitOptions
from deeppot_galpy.pipeline import fit_catalog, run_demo

DEMO = ["demo", "--size", "test", "--quiet", "--no-figures"]


def _snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path (the set of files too)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def _finished_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*DEMO, "--seed", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def finished(_finished_once, tmp_path):
    """A finished run of its own for each test: a copy of one demo run (one fit, not three)."""
    return Path(shutil.copytree(_finished_once, tmp_path / "run"))


def test_a_finished_run_is_refused_and_left_byte_identical(finished, tmp_path, capsys):
    before = _snapshot(finished)
    assert {"run.json", "metrics.json", "potential_replicates.safetensors"} <= set(before)
    capsys.readouterr()
    catalog = tmp_path / "stars.ecsv"
    catalog.write_text("not read: the directory is checked first\n")
    for argv in ([*DEMO, "--out", str(finished)], ["fit", str(catalog), "--out", str(finished)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(finished) in lines[0] and "finished run" in lines[0]
        for way in ("--out", f"--resume {finished}", "--overwrite"):
            assert way in lines[0]
        assert _snapshot(finished) == before
    # the Python API refuses the same way (overwrite=False is the default)
    with pytest.raises(FileExistsError, match="holds a finished run"):
        run_demo(finished, "test", options=FitOptions(progress=False))
    with pytest.raises(FileExistsError, match="holds a finished run"):
        fit_catalog(catalog, finished, PRESETS["test"], options=FitOptions(progress=False))
    assert _snapshot(finished) == before
    # resume and overwrite contradict each other
    assert main([*DEMO, "--resume", str(finished), "--overwrite"]) == 2
    assert "not both" in capsys.readouterr().err
    assert _snapshot(finished) == before


def test_resume_of_a_finished_run_returns_its_metrics(finished, capsys):
    stored = json.loads((finished / "metrics.json").read_text())
    weights = (finished / "potential.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["demo", "--quiet", "--resume", str(finished)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[: printed.rindex("}") + 1])
    assert summary["force_err_median"] == stored["potential"]["force_err_median"]
    assert json.loads((finished / "metrics.json").read_text()) == stored
    assert (finished / "potential.safetensors").read_bytes() == weights  # nothing refitted
    # and from Python
    options = FitOptions(seed=3, progress=False, figures=False, resume=True)
    assert run_demo(finished, "test", options=options) == stored


def test_overwrite_replaces_the_whole_run(finished):
    old = _snapshot(finished)
    argv = [*DEMO, "--seed", "4", "--replicates", "0", "--overwrite", "--out", str(finished)]
    assert main(argv) == 0
    new = _snapshot(finished)
    run = json.loads((finished / "run.json").read_text())
    assert run["seed"] == 4 and "resumed" not in run
    assert new["potential.safetensors"] != old["potential.safetensors"]
    assert new["metrics.json"] != old["metrics.json"]
    # the old run's replicates are gone, not left beside a run that has none
    assert not any(name.startswith("potential_replicates") for name in new)
    assert "coverage" not in json.loads((finished / "metrics.json").read_text())
