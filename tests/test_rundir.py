"""Run directories: save/load round trips and clear errors for corrupt or mismatched files."""

import json

import numpy as np
import pytest
import torch

from deeppot_galpy import Units
from deeppot_galpy.df import FlowConfig, FlowEnsemble
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.potential import PotentialConfig, PotentialNet
from deeppot_galpy.rundir import ModelFileError, RunDir


@pytest.fixture
def run(tmp_path):
    ps = Plummer().sample(500, 0)
    torch.manual_seed(0)
    net = PotentialNet(torch.zeros(3), 1.0, 0.3, PotentialConfig(hidden=(16, 16)))
    ens = FlowEnsemble(ps.standardization(), k=2, config=FlowConfig(steps=4, hidden=(8,)))
    rd = RunDir(tmp_path / "run", create=True)
    rd.save_potential(net, Units.nbody(), ps.region())
    rd.save_flows(ens)
    return rd, net, ens, ps


def test_round_trip_gives_identical_outputs(run):
    rd, net, ens, ps = run
    net2, meta = RunDir(rd.path).load_potential()
    x = torch.as_tensor(ps.x, dtype=torch.float32)
    torch.testing.assert_close(net2(x), net(x), rtol=0, atol=0)
    assert Units.from_dict(meta["units"]) == Units.nbody()
    assert meta["region"]["r_max"] == pytest.approx(ps.region()["r_max"])
    ens2, _ = RunDir(rd.path).load_flows()
    np.testing.assert_array_equal(
        ens2.log_prob_and_grad(ps.eta)[1], ens.log_prob_and_grad(ps.eta)[1]
    )


def test_truncated_weights_are_reported(run):
    rd = run[0]
    p = rd.path / "potential.safetensors"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="corrupt, truncated"):
        rd.load_potential()


def test_weights_from_another_model_are_reported(run, tmp_path):
    rd = run[0]
    other = RunDir(tmp_path / "other", create=True)
    big = PotentialNet(torch.zeros(3), 1.0, 0.3, PotentialConfig(hidden=(32, 32)))
    other.save_potential(big, Units.nbody(), run[3].region())
    (rd.path / "potential.safetensors").write_bytes(
        (other.path / "potential.safetensors").read_bytes()
    )
    with pytest.raises(ModelFileError, match="does not match the hash"):
        rd.load_potential()
    # a consistent hash but an architecture that does not fit the weights
    meta = json.loads((other.path / "potential.json").read_text())
    meta["metadata"]["network"]["config"]["hidden"] = [16, 16]
    (other.path / "potential.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="does not fit the architecture"):
        other.load_potential()


def test_bad_json_and_missing_files_are_reported(run, tmp_path):
    rd = run[0]
    (rd.path / "flows.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        rd.load_flows()
    with pytest.raises(ModelFileError, match="missing"):
        RunDir(tmp_path, create=True).load_potential()
    with pytest.raises(FileNotFoundError):
        RunDir(tmp_path / "nope")


def test_weights_are_not_pickles(run):
    # safetensors: a JSON header then raw tensor bytes, nothing executable
    head = (run[0].path / "potential.safetensors").read_bytes()[:64]
    assert b"\x80" not in head[:2]  # no pickle protocol marker
    n = int.from_bytes(head[:8], "little")
    header = json.loads((run[0].path / "potential.safetensors").read_bytes()[8 : 8 + n])
    assert "mlp.0.weight" in header


def test_a_mirror_fit_saved_before_the_vertical_setting_loads_as_it_was(tmp_path):
    """Mirror fits read the softened abs(z) before ``vertical`` existed (now z^2): a file
    without the key must come back as the same function, not as today's input."""
    torch.manual_seed(0)
    old = PotentialConfig(hidden=(16, 16), symmetry="mirror", vertical="softened")
    net = PotentialNet(torch.tensor([8.0, 0.0, 0.1]), 0.5, 400.0, old)
    rd = RunDir(tmp_path / "old", create=True)
    rd.save_potential(net, Units.galactic(), {"r_max": 1.0})
    path = rd.path / "potential.json"
    record = json.loads(path.read_text())
    del record["metadata"]["network"]["config"]["vertical"]
    path.write_text(json.dumps(record))
    loaded, _ = RunDir(rd.path).load_potential()
    assert loaded.config.vertical == "softened"
    x = torch.tensor([[8.0, 0.3, 0.02], [7.5, -0.2, -0.4]])
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    today = PotentialNet.from_metadata(
        {**net.metadata(), "config": PotentialConfig(hidden=(16, 16), symmetry="mirror").to_dict()}
    )
    today.load_state_dict(net.state_dict())
    assert not torch.allclose(today(x), net(x))  # the control: the inputs differ
