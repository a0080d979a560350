"""The rounding contract, enforced: layers with non-dyadic (random float) scales get coefficient
grids chosen on calibration inputs; the lowered graph keeps >= 99.9 % prediction agreement with
the executed export; when no grid within the hardware limit can, lower/compile fail with one line
(exit 2, the layer named, nothing written); verify fails a build whose grids break the contract.

Agreement is measured, never bit-equality: the export's float32 convolutions with non-dyadic
scales round differently on different CPUs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _builders import abc_net, export_abc, mnist

from abcn_hw.cli import main
from abcn_hw.compiler import compare, lower
from abcn_hw.compiler.contract import lower_to_contract
from abcn_hw.compiler.pipeline import grid_metadata
from abcn_hw.compiler.scales import MAX_GRID_BITS, MIN_GRID_BITS
from abcn_hw.errors import ContractError

# an integer-input and a binary-input conv layer and the classifier, float alpha and beta: three grids
SPEC = dict(convs=[(4, 3, 1, 1), (6, 3, 1, 1)], m=[2, 3, 2], n=[None, 2, 3], hw=12, pool=0, classes=10, grid="float")


@pytest.fixture(scope="module")
def float_net(tmp_path_factory):
    net, _ = abc_net(SPEC, 5)
    exp = export_abc(net, (1, 12, 12))
    x = np.ascontiguousarray(mnist("test")[0][:400, :, :12, :12])
    d = tmp_path_factory.mktemp("contract")
    onnx.save(exp, str(d / "float.onnx"))
    np.save(d / "x.npy", x)
    return exp, x, d


def _calibration(x):
    return lambda: (x, f"{len(x)} test crops")


def test_grids_chosen_on_calibration_inputs_meet_the_contract_deterministically(float_net):
    exp, x, _ = float_net
    low, rep = lower_to_contract(exp, _calibration(x))
    grids = rep.grid_bits
    assert [layer.threshold for layer in rep.layers] == ["fused", "fused", "final"], rep.table()
    assert all(layer.scales_rounded for layer in rep.layers) and sorted(grids) == sorted(l.name for l in rep.layers)
    assert all(MIN_GRID_BITS <= b <= MAX_GRID_BITS for b in grids.values())
    assert min(grids.values()) < MAX_GRID_BITS, "the search never chose a coarser grid than the finest"
    # measured and recorded ...
    assert rep.calibration_agreement >= 0.999 and rep.grid_evaluations > 0
    assert "coefficient grids" in rep.table() and rep.to_dict()["grid_bits"] == grids
    meta = grid_metadata(low.model)
    assert meta["min_agreement"] == 0.999 and all(meta["bits"][k] == v for k, v in grids.items())
    # ... holds when measured again, independently of the search
    assert compare(exp, low, x).prediction_agreement >= 0.999
    # the choice matters: every grid at the coarsest misses the contract
    coarse, _ = lower(exp, grid={k: MIN_GRID_BITS for k in grids})
    assert compare(exp, coarse, x).prediction_agreement < 0.999
    # deterministic: the same inputs choose the same grids and the same bytes
    low2, rep2 = lower_to_contract(exp, _calibration(x))
    assert rep2.grid_bits == grids
    assert low2.model.SerializeToString(deterministic=True) == low.model.SerializeToString(deterministic=True)
    # lower() with the recorded grids reproduces the lowered graph (what verify relies on)
    again, _ = lower(exp, grid=meta["bits"], max_acc_bits=meta["max_acc_bits"], min_agreement=meta["min_agreement"])
    assert again.model.SerializeToString(deterministic=True) == low.model.SerializeToString(deterministic=True)


def test_exact_model_needs_no_calibration():
    net, _ = abc_net(dict(SPEC, grid="fixed"), 5)
    exp = export_abc(net, (1, 12, 12))

    def never():
        raise AssertionError("an exact lowering must not ask for calibration inputs")

    low, rep = lower_to_contract(exp, never)
    assert rep.exact and rep.grid_bits == {} and grid_metadata(low.model) is None


def test_no_grid_within_the_limit_is_a_contract_error(float_net):
    exp, x, _ = float_net
    with pytest.raises(ContractError) as e:  # a 16-bit accumulator leaves grids far too coarse
        lower_to_contract(exp, _calibration(x), max_acc_bits=16)
    msg = str(e.value)
    assert "\n" not in msg and "rounding contract not met at layer '" in msg and "16-bit" in msg, msg
    assert e.value.exit_code == 2


def _cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("limit,reason", [("12", "no coefficient grid of >= 2 bits fits a 12-bit accumulator"),
                                          ("16", "rounding contract not met at layer")])
def test_cli_impossible_contract_exit_2_nothing_written(float_net, tmp_path, capsys, limit, reason):
    _, _, d = float_net
    out = tmp_path / "low.onnx"
    rc, stdout, err = _cli(["lower", str(d / "float.onnx"), "--out", str(out), "--inputs", str(d / "x.npy"),
                            "--max-acc-bits", limit], capsys)
    assert rc == 2 and not out.exists(), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcn-hw lower: error: ") and reason in lines[0], err
    assert "layer '" in lines[0]
    build = tmp_path / "build"
    rc, _, err = _cli(["compile", str(d / "float.onnx"), "--out", str(build), "--inputs", str(d / "x.npy"),
                       "--max-acc-bits", limit], capsys)
    assert rc == 2 and not build.exists(), err
    assert len(err.strip().splitlines()) == 1 and reason in err


def test_cli_min_agreement_opt_out_is_reported(float_net, tmp_path, capsys):
    _, _, d = float_net
    out = tmp_path / "low.onnx"
    rc, stdout, err = _cli(["lower", str(d / "float.onnx"), "--out", str(out), "--inputs", str(d / "x.npy"),
                            "--max-acc-bits", "20", "--min-agreement", "0.5", "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(stdout)
    assert rep["min_agreement"] == 0.5 and rep["max_acc_bits"] == 20 and rep["calibration_agreement"] >= 0.5
    assert set(rep["grid_bits"]) and grid_metadata(onnx.load(str(out)))["min_agreement"] == 0.5
    rc, stdout, err = _cli(["lower", str(d / "float.onnx"), "--out", str(out), "--force", "--inputs",
                            str(d / "x.npy"), "--max-acc-bits", "20", "--min-agreement", "0.5"], capsys)
    assert rc == 0 and "lowered by --min-agreement from 99.9%" in stdout, stdout


def test_cli_bad_contract_options(float_net, tmp_path, capsys):
    _, _, d = float_net
    for flags in (["--min-agreement", "1.5"], ["--min-agreement", "0"], ["--max-acc-bits", "80"]):
        rc, _, err = _cli(["lower", str(d / "float.onnx"), "--out", str(tmp_path / "l.onnx")] + flags, capsys)
        assert rc == 2 and "error: --" in err and not (tmp_path / "l.onnx").exists(), err


def test_rounded_model_of_another_shape_needs_inputs(float_net, tmp_path, capsys):
    _, _, d = float_net  # 12x12 inputs: the bundled MNIST images do not fit
    rc, _, err = _cli(["lower", str(d / "float.onnx"), "--out", str(tmp_path / "l.onnx")], capsys)
    assert rc == 2 and "non-dyadic scales" in err and "--inputs" in err and not (tmp_path / "l.onnx").exists(), err


@pytest.mark.slow
def test_brevitas_stock_binary_lenet_gets_grids_meeting_the_contract(tmp_path):
    """A net written with Brevitas' own quantizers (constant +-0.1 weights: not dyadic), random
    weights and calibrated batch norm: every layer rounded, grids chosen, the contract holds."""
    import torch
    from _builders import calibrate_bn

    from abcn_hw.models import build_stock_binary_model
    from abcn_hw.qonnx_export import export_to_qonnx

    torch.manual_seed(0)
    model = build_stock_binary_model()
    calibrate_bn(model, mnist("train")[0][:300])
    export_to_qonnx(model, model.input_shape, tmp_path / "stock.onnx")
    exp = onnx.load(str(tmp_path / "stock.onnx"))
    x = mnist("test")[0][:300]
    low, rep = lower_to_contract(exp, _calibration(x))
    assert all(layer.scales_rounded for layer in rep.layers) and len(rep.grid_bits) == 4, rep.table()
    assert rep.calibration_agreement >= 0.999 and compare(exp, low, x).prediction_agreement >= 0.999


def test_prediction_agreement_counts_a_tied_reference_class_as_agreement():
    """Binary nets give integer-valued logits: when the export ties, any of its tied classes is its
    prediction (first-index argmax alone failed the contract spuriously); a real disagreement counts."""
    from abcn_hw.compiler.compare import prediction_agreement

    ref = np.array([[2.0, 2.0, 1.0], [0.0, 3.0, 1.0], [1.0, 1.0, 1.0], [5.0, 4.0, 4.0]], np.float32)
    low = np.array([[1.0, 2.5, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 0.5], [3.0, 4.0, 4.0]], np.float32)
    # row 0: picks class 1, tied maximum of ref -> agrees; row 1: same; row 2: class 2, tied -> agrees;
    # row 3: picks class 1, ref's unique maximum is class 0 -> disagrees
    assert prediction_agreement(ref, low) == 0.75
    assert prediction_agreement(ref, ref) == 1.0
    assert prediction_agreement(ref, low[:, :2]) == 0.0
