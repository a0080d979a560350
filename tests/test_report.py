"""Computational-gain arithmetic, the Larq-style summary, sweep grid parsing, the design space."""
import json
from pathlib import Path

import pytest

from abcn_hw.errors import UsageError
from abcn_hw.report.gain import layer_gain, network_gain
from abcn_hw.report.grid import GridPoint

ROOT = Path(__file__).resolve().parents[1]

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
    assert g.binarized
    # Energies worked out by hand from Horowitz, ISSCC 2014 (45 nm): fp32 multiply 3.7 pJ + add 0.9 pJ,
    # int32 add 0.1 pJ, int8 add 0.03 pJ; one XNOR-popcount bit op charged 0.03 / 8 = 0.00375 pJ.
    #   float:  819,200 MACs x 4.6 pJ                                          = 3,768,320 pJ
    #   binary: 4,915,200 bit ops x 0.00375 pJ = 18,432 pJ
    #           + 16,384 threshold-unit adds x 0.1 pJ = 1,638.4 pJ           =    20,070.4 pJ
    assert g.energy_float_pj == pytest.approx(3_768_320.0, rel=1e-12)
    assert g.energy_binary_pj == pytest.approx(20_070.4, rel=1e-12)


def test_first_layer_is_integer_not_binarized():
    g = layer_gain(FIRST)
    assert g.binary_ops == 0 and not g.binarized
    assert g.int_adds == 2 * g.macs + 16 * 24 * 24 * (2 + 2)
    # by hand: 230,400 MACs x 4.6 pJ = 1,059,840 pJ float; the integer layer adds or subtracts each
    # pixel once per weight base (460,800 int32 adds) plus 36,864 unit adds, x 0.1 pJ = 49,766.4 pJ
    assert g.energy_float_pj == pytest.approx(1_059_840.0, rel=1e-12)
    assert g.energy_binary_pj == pytest.approx(49_766.4, rel=1e-12)


def test_network_shares_and_ratios():
    net = network_gain({"layers": [FIRST, CONV]})
    a, b = layer_gain(FIRST), layer_gain(CONV)
    assert net.binarized_mac_share == pytest.approx(b.macs / (a.macs + b.macs))
    d = net.to_dict()
    assert d["memory_compression"] == pytest.approx(net.memory_bits_float / net.memory_bits_binary)
    # (3,768,320 + 1,059,840) / (20,070.4 + 49,766.4) pJ, from the hand-worked figures above
    assert d["energy_ratio"] == pytest.approx(4_828_160 / 69_836.8, rel=1e-12)
    assert d["energy_ratio"] == pytest.approx(69.1349, abs=1e-4) and "Horowitz" in d["energy_source"]


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


# -- the design space (abcn-hw sweep, ah.design_space) ----------------------------------------------------

def test_pareto_front_marks_the_non_dominated_points():
    from abcn_hw.report.design_space import pareto_front

    lut = [100, 200, 150, 300, 200, None]
    acc = [0.90, 0.95, 0.89, 0.95, 0.97, 0.99]
    # 150 LUT at 0.89 is dominated by 100 at 0.90; 300 at 0.95 by 200 at 0.95 (and 200 at 0.97)
    assert pareto_front(lut, acc) == [True, False, False, False, True, False]
    fps = [1000, 500, 2000, 500, None, 10]
    assert pareto_front(fps, [0.9, 0.95, 0.9, 0.94, 0.99, 0.99], higher_cost_is_better=True) == \
        [False, True, True, False, False, True]
    assert pareto_front([5, 5], [0.9, 0.9]) == [True, True]  # equal points do not dominate each other


def test_fps_within_lut_budget_is_the_fastest_fitting_folding():
    from abcn_hw.backend.folding import auto_folding, build_graph, estimate
    from abcn_hw.report.design_space import fps_within_lut, network_of

    net = network_of(ROOT / "export" / "lenet-3x3.onnx")

    def at(fps):
        fold, _ = auto_folding(net, fps, 100.0)
        return estimate(net, build_graph(net, fold), 100.0).to_dict()

    slow, fast = at(1e-3), at(1e12)
    assert fps_within_lut(net, slow["lut"] - 1) is None  # not even the smallest folding fits
    assert fps_within_lut(net, slow["lut"])["fps"] == pytest.approx(slow["fps"], rel=1e-4)
    assert fps_within_lut(net, 10 * fast["lut"])["fps"] == pytest.approx(fast["fps"], rel=1e-4)
    budgets = [slow["lut"] * k for k in (1, 1.5, 2, 4, 8)]
    found = [fps_within_lut(net, b) for b in budgets]
    assert all(f["lut"] <= b for f, b in zip(found, budgets))
    assert all(a["fps"] <= b["fps"] for a, b in zip(found, found[1:]))  # more budget, never slower
    assert found[-1]["fps"] > found[0]["fps"]


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
    metrics = {"command": ["abcn-hw"] + cmd[3:], "test_accuracy": 0.5, "epochs": 2, "seed": 0,
               "recipe": {"bn_reestimate_batches": 50}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
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
    # the same command line, recorded before batch-norm re-estimation became the default: trained again
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "recipe": {"bn_reestimate_batches": 0}}))
    old = grid.run_grid("lenet", [point], [0], 2, tmp_path / "runs", jobs=1, extra=opts, log=lambda s: None)
    assert len(calls) == 2 and old[0].error == "boom"
    # ... unless the grid pins it off
    off = opts + ["--bn-reestimate", "0"]
    cmd_off = grid._train_command("lenet", point, 0, 2, run_dir, off) + ["--force"]
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "recipe": {"bn_reestimate_batches": 0},
                                                      "command": ["abcn-hw"] + cmd_off[3:]}))
    pinned = grid.run_grid("lenet", [point], [0], 2, tmp_path / "runs", jobs=1, extra=off, log=lambda s: None)
    assert len(calls) == 2 and pinned[0].metrics["test_accuracy"] == 0.5
