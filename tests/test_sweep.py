"""abcn-hw sweep: a small grid trained in parallel processes, compiled, tabulated and plotted."""
import json

from abcn_hw.cli import main


def test_sweep_trains_compiles_and_tabulates(tmp_path):
    out = tmp_path / "sw"
    rc = main(["sweep", "--model", "tfc", "--bases", "1x1,2x1", "--float", "--epochs", "1", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "sweep.json").read_text())
    labels = [r["setting"] for r in data["rows"]]
    assert labels == ["float", "ABC (1,1)", "ABC (2,1)"]
    for r in data["rows"]:
        assert 0.5 < r["mean"] <= 1.0  # one epoch of tfc on MNIST learns something
    for label in ("ABC (1,1)", "ABC (2,1)"):
        hw = data["hardware"][label]
        assert "error" not in hw and hw["lut"] > 0 and hw["fps"] > 0
    assert "float" not in data["hardware"]
    assert (out / "accuracy_vs_bases.png").stat().st_size > 1000
    assert "| ABC (2,1) |" in (out / "sweep.md").read_text()
    # the design space: each compiled setting at its LUT and at its FPS within the cheapest one's LUTs
    ds = data["design_space"]
    luts = {label: data["hardware"][label]["lut"] for label in ("ABC (1,1)", "ABC (2,1)")}
    assert ds["lut_budget"] == min(luts.values()) and ds["reference"]["setting"] == "float"
    points = {p["setting"]: p for p in ds["points"]}
    assert set(points) == set(luts)
    for label, p in points.items():
        assert p["lut"] == luts[label] and p["accuracy"] == next(r["mean"] for r in data["rows"]
                                                                 if r["setting"] == label)
        assert p["fps_at_budget"] is None or p["lut_at_budget"] <= ds["lut_budget"]
    cheapest = min(points.values(), key=lambda p: p["lut"])
    assert cheapest["fps_at_budget"] >= cheapest["fps"] and cheapest["pareto_lut"]
    assert any(p["pareto_fps"] for p in points.values())
    assert (out / "design_space.png").stat().st_size > 1000
    assert "## Design space" in (out / "sweep.md").read_text()


def test_sweep_rejects_bad_grid(tmp_path, capsys):
    assert main(["sweep", "--model", "tfc", "--bases", "3x0", "--out", str(tmp_path / "x")]) == 2
    assert "bad grid point" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
