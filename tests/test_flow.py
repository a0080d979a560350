"""The main job end to end: abcn-hw flow, its report, resumability and up-front validation."""
import json

import pytest

from abcn_hw.cli import main


#: the flow the module's tests share: one epoch on the first 1,000 of the 8,000 training images
#: (what the tests check, exactness and the report, does not depend on how well it learns)
FLOW = ["flow", "--model", "lenet", "--weight-bases", "2", "--act-bases", "2", "--epochs", "1", "--images", "200",
        "--no-reference", "--limit-train", "1000"]


@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "demo"
    rc = main([*FLOW, "--quiet", "--out", str(out)])
    assert rc == 0
    return out


def test_flow_verifies_bit_exact_and_reports(flow_dir):
    rep = json.loads((flow_dir / "report.json").read_text())
    assert rep["verify"]["ok"] and rep["verify"]["bit_exact"] and rep["verify"]["mismatches"] == 0
    acc = rep["accuracy"]
    # exact pipeline: the export (provably: every layer's partial sums below 2^24), the lowered graph
    # and the csim agree on every prediction
    assert rep["export_bit_exact"] is True and rep["export_exactness"]["first_failing_layer"] is None
    assert "provably bit-exact on any CPU" in (flow_dir / "report.md").read_text()
    assert acc["qonnx_export"] == acc["pytorch"]
    assert acc["lowered"] == acc["csim"]
    assert rep["lowering"]["exact"] and rep["lowering"]["output_equal"] == 1.0
    assert rep["gain"]["memory_compression"] > 1 and 0 < rep["gain"]["binarized_mac_share"] <= 1
    assert all(layer["cycles"] for layer in rep["layers"])
    html = (flow_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "Verdict: PASS" in html
    for f in ("report.md", "lowered.onnx", "build/report.json", "csim/outputs.npy", "verify.json"):
        assert (flow_dir / f).exists(), f
    # the model was trained with the default recipe, batch-norm re-estimation included, and still verifies
    train = json.loads((flow_dir / "train" / "metrics.json").read_text())
    assert train["recipe"]["bn_reestimate_batches"] == 50 and train["test_accuracy_before_bn_reestimate"] is not None


def test_flow_resumes_without_redoing_finished_stages(flow_dir, capsys, monkeypatch):
    from abcn_hw.flow import FlowConfig

    # the up-front backend-support check is not repeated once this training compiled
    monkeypatch.setattr(FlowConfig, "check_backend_support", lambda self: pytest.fail("checked again"))
    before = {p.name: p.stat().st_mtime_ns for p in (flow_dir / ".flow").glob("*.json")}
    rc = main([*FLOW, "--quiet", "--out", str(flow_dir)])
    assert rc == 0
    err = capsys.readouterr().err
    for stage in ("train", "lower", "compile", "csim", "verify"):
        assert f"[{stage}] up to date" in err
    after = {p.name: p.stat().st_mtime_ns for p in (flow_dir / ".flow").glob("*.json")}
    assert before == after


@pytest.mark.parametrize("argv,code", [
    (["--weight-bases", "9"], 2),
    (["--model", "nope"], 2),
    (["--epochs", "0"], 2),
    (["--target-fps", "-5"], 2),
])
def test_flow_rejects_bad_input_before_any_work(tmp_path, capsys, argv, code):
    out = tmp_path / "f"
    rc = main(["flow", "--out", str(out)] + argv)
    assert rc == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("abcn-hw flow: error:") and "Traceback" not in err[0]
    assert not out.exists()


def test_flow_refuses_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    rc = main(["flow", "--out", str(tmp_path)])
    assert rc == 1
    assert "not a flow directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_flow_json_is_the_api_result(flow_dir, capsys):
    """abcn-hw flow --json prints what ah.run_flow returns (here: every stage skipped, recorded results)."""
    import abcn_hw as ah

    capsys.readouterr()
    rc = main([*FLOW, "--json", "--out", str(flow_dir)])
    out = capsys.readouterr().out
    assert rc == 0
    cli = json.loads(out)
    res = ah.run_flow(flow_dir, model="lenet", weight_bases=2, act_bases=2, epochs=1, images=200, reference=False,
                      limit_train=1000, quiet=True)
    assert res.to_dict() == cli
    assert set(ah.FlowResult.fields()) <= set(cli) and res.verify["ok"] and res.csim["images"] == 200
    assert res.report["html"].endswith("report.html")


def test_flow_baselines_follow_the_options(tmp_path):
    from abcn_hw.flow import FlowConfig

    assert FlowConfig(out=tmp_path).stock_model == "lenet-stock"
    assert FlowConfig(out=tmp_path, stock=False).stock_model is None
    assert FlowConfig(out=tmp_path, reference=False).stock_model is None  # --no-reference: no baselines
    assert FlowConfig(out=tmp_path, model="lfc").stock_model is None  # no stock variant of lfc
    cfg = FlowConfig(out=tmp_path).train_config(stock=True)
    assert cfg.model == "lenet-stock" and cfg.out == tmp_path / "stock" and cfg.weight_bases is None
    # batch-norm re-estimation: the default for the ABC model and the float reference, not the stock baseline
    flow = FlowConfig(out=tmp_path)
    assert [flow.train_config(**k).validate().bn_reestimate for k in ({}, {"reference": True}, {"stock": True})] \
        == [50, 50, 0]


@pytest.mark.slow
def test_flow_report_shows_float_and_stock_baselines(tmp_path):
    out = tmp_path / "f"
    rc = main(["flow", "--model", "lenet", "--weight-bases", "1", "--act-bases", "1", "--epochs", "1",
               "--images", "100", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    acc = rep["accuracy"]
    stock = json.loads((out / "stock" / "metrics.json").read_text())
    ref = json.loads((out / "reference" / "metrics.json").read_text())
    assert acc["stock_binary"] == stock["test_accuracy"] and stock["model"] == "lenet-stock"
    assert acc["float_reference"] == ref["test_accuracy"]
    md = (out / "report.md").read_text()
    assert "stock binary baseline" in md and "float32 reference" in md


@pytest.mark.slow
def test_flow_resnet8_ends_in_verify_pass(tmp_path):
    """The residual net through the whole job on the bundled MNIST subset: trained, exported, lowered
    to integer joins, compiled to the dataflow graph (forks, joins, thresholds, sum pool), simulated
    and verified bit-exact."""
    out = tmp_path / "r8"
    rc = main(["flow", "--model", "resnet8", "--weight-bases", "1", "--act-bases", "1",
               "--epochs", "1", "--images", "64", "--no-reference", "--no-stock", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["verify"]["ok"] and rep["verify"]["bit_exact"] and rep["verify"]["mismatches"] == 0
    assert rep["lowering"]["exact"]
    kinds = {s["kind"] for s in json.loads((out / "build" / "host" / "io.json").read_text())["stages"]}
    assert {"fork", "radd", "ithr", "sumpool"} <= kinds
