"""verify enforces the rounding contract of a build whose layers have non-dyadic scales: a build
compiled under the contract passes (csim bit-exact against its lowered graph, the lowered graph
>= 99.9 % in prediction agreement with the export); a build whose coefficient grids were not
chosen by the contract (forced coarse, the contract still recorded) fails, naming a layer."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _models import abc_net, zoo

from abcn_hw.backend import compile
from abcn_hw.cli import main
from abcn_hw.compiler import lower
from abcn_hw.sim import verify

SPEC = dict(convs=[(4, 3, 1, 1), (6, 3, 1, 1)], m=[2, 3, 2], n=[None, 2, 3], hw=12, pool=0, classes=10, grid="float")


def test_verify_enforces_the_rounding_contract(tmp_path, capsys):
    path, x = abc_net(SPEC, str(tmp_path / "float.onnx"), 5)
    x = np.ascontiguousarray(x)
    res = compile(path, tmp_path / "good", calibration=lambda: (x, f"{len(x)} test crops"))
    grids = res.lowering_report.grid_bits
    assert len(grids) == 3
    report = json.loads((tmp_path / "good" / "report.json").read_text())
    assert report["rounding_contract"]["bits"].items() >= grids.items()
    assert report["lowering"]["grid_bits"] == grids and report["rounding_contract"]["min_agreement"] == 0.999
    assert "## Rounding contract" in (tmp_path / "good" / "README.md").read_text()
    good = verify(path, tmp_path / "good", x)
    assert good.ok and good.bit_exact and good.contract_ok and not good.lowering_exact, good.summary()
    assert good.min_agreement == 0.999 and good.grid_bits == grids
    assert good.lowered_vs_exported["prediction_agreement"] >= 0.999

    # tampered: the same model lowered on 2-bit grids, recorded with the default contract
    coarse, _ = lower(onnx.load(path), grid={k: 2 for k in grids})
    compile(coarse, tmp_path / "bad")
    bad = verify(path, tmp_path / "bad", x)
    assert bad.bit_exact, bad.summary()  # the csim computes its lowered graph exactly ...
    assert not bad.contract_ok and not bad.ok  # ... which breaks the contract with the export
    assert bad.contract_layer in grids, bad.summary()
    assert f"CONTRACT VIOLATED at layer '{bad.contract_layer}'" in bad.summary()
    # the contract to check can be set by the caller (default: the build's record)
    measured = bad.lowered_vs_exported["prediction_agreement"]  # far below: 2-bit grids collapse the classifier
    if measured > 0:
        assert verify(path, tmp_path / "bad", x, min_agreement=measured).contract_ok
    assert verify(path, tmp_path / "good", x, min_agreement=1.0).ok  # chosen on these 200 inputs: 100 %
    np.save(tmp_path / "x.npy", x)
    rc = main(["verify", path, str(tmp_path / "bad"), "--inputs", str(tmp_path / "x.npy"), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 1 and d["ok"] is False and d["contract_ok"] is False and d["contract_layer"] == bad.contract_layer


@pytest.mark.slow
def test_zoo_lenet_float_scales_compile_and_verify(tmp_path):
    """lenet 3/3 with --scale-grid float: grids chosen on the 500 bundled MNIST test images it is
    compiled with by default, csim bit-exact against the lowered graph, and the contract holds on
    the other 1500 test images."""
    path, x = zoo("lenet", 3, 3, str(tmp_path / "lenet_float.onnx"), grid="float")
    res = compile(path, tmp_path / "b")
    rep = res.lowering_report
    assert rep.calibration_images == 500 and rep.calibration_agreement >= 0.999, rep.table()
    assert len(rep.grid_bits) == 4 and all(2 <= b <= 24 for b in rep.grid_bits.values()), rep.table()
    v = verify(path, tmp_path / "b", x[500:])
    assert v.ok and v.bit_exact and v.contract_ok and v.grid_bits == rep.grid_bits, v.summary()
