"""Computational-gain arithmetic, the Larq-style summary, and sweep grid parsing."""
import json

import pytest

from abcn_hw.errors import UsageError
from abcn_hw.report.gain import PJ_BINARY_OP, PJ_FP32_MAC, PJ_INT32_ADD, layer_gain, network_gain
from abcn_hw.report.grid import GridPoint

CONV = {"name": "c", "op": "XnorPopcountConv", "in_shape": [1, 16, 12, 12], "out_shape": [1, 32, 8, 8],
        "m": 3, "n": 2, "k": 400, "next_bases": 2, "acc_bits": 20}
FIRST = {"name": "f", "op": "IntegerInputConv", "in_shape": [1, 1, 28, 28], "out_shape": [1, 16, 24, 24],
         "m": 2, "n": 1, "k": 25, "next_bases": 2, "acc_bits": 16}


def test_binary_layer_counts():
    g = layer_gain(CONV)
    macs = 32 * 8 * 8 * 400
    assert g.macs == macs
    assert g.binary_ops == 3 * 2 * macs
    assert g.weight_bits_float == 32 * 32 * 400 and g.weight_bits_binary == 3 * 32 * 400
    assert g.threshold_bits == 2 * 32 * 20 + 3 * 32 * 8 + 2 * 8
    unit_adds = 32 * 64 * (3 * 2 + 2)
    assert g.int_adds == unit_adds
    assert g.energy_float_pj == pytest.approx(macs * PJ_FP32_MAC)
    assert g.energy_binary_pj == pytest.approx(g.binary_ops * PJ_BINARY_OP + unit_adds * PJ_INT32_ADD)
    assert g.binarized


def test_first_layer_is_integer_not_binarized():
    g = layer_gain(FIRST)
    assert g.binary_ops == 0 and not g.binarized
    assert g.int_adds == 2 * g.macs + 16 * 24 * 24 * (2 + 2)


def test_network_shares_and_ratios():
    net = network_gain({"layers": [FIRST, CONV]})
    a, b = layer_gain(FIRST), layer_gain(CONV)
    assert net.binarized_mac_share == pytest.approx(b.macs / (a.macs + b.macs))
    d = net.to_dict()
    assert d["memory_compression"] == pytest.approx(net.memory_bits_float / net.memory_bits_binary)
    assert d["energy_ratio"] > 1 and "Horowitz" in d["energy_source"]


@pytest.mark.parametrize("text,label", [("3x3", "ABC (3,3)"), ("float", "float"), ("1X5", "ABC (1,5)"),
                                        ("stock", "stock binary (Brevitas)")])
def test_grid_points_parse(text, label):
    assert GridPoint.parse(text).label == label


@pytest.mark.parametrize("text", ["0x1", "9x1", "3", "3x3x3", "abc"])
def test_bad_grid_points(text):
    with pytest.raises(UsageError):
        GridPoint.parse(text)


def test_flow_report_shows_the_rounding_contract():
    from abcn_hw.report.flow_report import _contract_line

    low = {"exact": False, "grid_bits": {"Conv_0": 15, "MatMul_1": 12}, "min_agreement": 0.999,
           "calibration": "500 test images", "calibration_agreement": 1.0}
    held = _contract_line(low, {"contract_ok": True, "min_agreement": 0.999, "lowering_exact": False})
    assert ">= 99.90%" in held and "Conv_0 15 bits, MatMul_1 12 bits" in held and "**held**" in held
    broken = _contract_line(low, {"contract_ok": False, "contract_layer": "Conv_0", "min_agreement": 0.99})
    assert ">= 99.00%" in broken and "**VIOLATED** at layer Conv_0" in broken
    assert "none needed" in _contract_line({"exact": True}, {"lowering_exact": True, "contract_ok": True})


def test_run_grid_reuses_a_run_only_with_the_same_command(tmp_path, monkeypatch):
    """A finished run is reused when its metrics.json holds the very command the grid would run
    (options such as --teacher or --warmup-epochs included); otherwise it is trained again."""
    import subprocess
    import sys

    from abcn_hw.report import grid

    point = GridPoint.parse("3x3")
    run_dir = tmp_path / "runs" / grid.run_dir_name("lenet", point, 0)
    opts = ["--warmup-epochs", "1"]
    cmd = grid._train_command("lenet", point, 0, 2, run_dir, opts) + ["--force"]
    assert cmd[:3] == [sys.executable, "-m", "abcn_hw.cli"]
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"command": ["abcn-hw"] + cmd[3:], "test_accuracy": 0.5,
                                                      "epochs": 2, "seed": 0}))
    calls = []

    def fake_run(c, **kw):
        calls.append(c)
        return subprocess.CompletedProcess(c, 1, "", "boom")

    monkeypatch.setattr(grid.subprocess, "run", fake_run)
    same = grid.run_grid("lenet", [point], [0], 2, tmp_path / "runs", jobs=1, extra=opts, log=lambda s: None)
    assert not calls and same[0].metrics["test_accuracy"] == 0.5
    other = grid.run_grid("lenet", [point], [0], 2, tmp_path / "runs", jobs=1, extra=["--warmup-epochs", "2"],
                          log=lambda s: None)
    assert len(calls) == 1 and other[0].error == "boom" and "--warmup-epochs" in calls[0]
