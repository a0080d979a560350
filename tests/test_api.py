"""The Python API (``import abcn_hw as ah``): documented, typed, the same results as the CLI's --json,
progress only where asked, import arrows down the pipeline."""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import abcn_hw as ah
from abcn_hw import api, progress
from abcn_hw.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: run-to-run timing fields (everything else must be equal between the API and the CLI)
TIMING = {"seconds", "sim_seconds", "build_seconds", "images_per_second", "csim_seconds", "train_seconds",
          "wall_seconds"}


def _strip_timing(d):
    if isinstance(d, dict):
        return {k: _strip_timing(v) for k, v in d.items() if k not in TIMING}
    if isinstance(d, list):
        return [_strip_timing(v) for v in d]
    return d


def cli_json(capsys, *argv) -> dict:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny tfc ABC (1,2) run trained through the API, compiled, and 48 test images."""
    d = tmp_path_factory.mktemp("api")
    run = ah.fit("tfc", d / "run", weight_bases=1, act_bases=2, epochs=1, batch_size=32, limit_train=96,
                 limit_test=48, quiet=True)
    x, y = ah.test_images("mnist", limit=48)
    hw = ah.compile(d / "run" / "model.onnx", d / "build")
    np.save(d / "x.npy", x)
    return {"dir": d, "run": run, "hw": hw, "x": x, "y": y, "onnx": d / "run" / "model.onnx", "build": d / "build"}


# -- the front door ----------------------------------------------------------------------------------

def test_every_api_name_is_documented_and_typed():
    for name in ah.API:
        obj = getattr(ah, name)
        assert obj is getattr(api, name)
        assert inspect.getdoc(obj) and len(inspect.getdoc(obj)) > 40, name
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name
            for p in sig.parameters.values():
                assert p.annotation is not inspect.Parameter.empty, f"{name}({p.name})"
        else:
            assert issubclass(obj, api.Result)
            if obj is not api.Result:
                assert obj.fields(), name
    assert "ah.fit" in api.__doc__ and "abcn_hw.train" in api.__doc__  # why it is not ah.train


def test_import_is_light_and_unknown_names_fail():
    code = "import sys, abcn_hw; print('torch' in sys.modules, 'abcn_hw.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        ah.no_such_thing  # noqa: B018


STAGES = ("train", "qonnx_export", "compiler", "backend", "sim", "report", "data", "models", "nn", "quant")


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


def test_stages_never_import_the_api_the_flow_or_the_cli():
    upper = {"abcn_hw.cli", "abcn_hw.api", "abcn_hw.flow", "abcn_hw.__main__"}
    checked = 0
    for stage in STAGES:
        for f in (ROOT / "abcn_hw" / stage).rglob("*.py"):
            bad = {m for m in _imports(f) if any(m == u or m.startswith(u + ".") for u in upper)}
            assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
            checked += 1
    assert checked > 30
    # the API does not import the CLI; the flow uses the API, not the CLI
    assert not {m for m in _imports(ROOT / "abcn_hw" / "api.py") if m.startswith("abcn_hw.cli")}
    assert not {m for m in _imports(ROOT / "abcn_hw" / "flow.py") if m.startswith("abcn_hw.cli")}
    assert "abcn_hw.api.fit_config" in _imports(ROOT / "abcn_hw" / "flow.py")


# -- results equal the --json outputs -------------------------------------------------------------------

def _check_result(res: api.Result, cli: dict) -> None:
    d = res.to_dict()
    assert _strip_timing(d) == _strip_timing(cli)
    assert set(d) == set(cli)
    for f in type(res).fields():  # the documented fields exist, as attributes and items
        assert f in d, f"{type(res).__name__}.{f} is documented but not in the JSON"
        assert getattr(res, f) == res[f]
    json.dumps(d)  # JSON-ready


def test_train_result_is_metrics_json(tiny, capsys, tmp_path):
    run = tiny["run"]
    assert run.test_accuracy == json.loads((run.run_dir / "metrics.json").read_text())["test_accuracy"]
    cli = cli_json(capsys, "train", "--model", "tfc", "--weight-bases", "1", "--act-bases", "2", "--epochs", "1",
                   "--batch-size", "32", "--limit-train", "96", "--limit-test", "48", "--json",
                   "--out", tmp_path / "cli_run")
    assert cli == json.loads((tmp_path / "cli_run" / "metrics.json").read_text())
    # the same training (bit-reproducible): equal but for the command line and the wall times
    a, b = run.to_dict(), cli
    assert a["command"] == ["abcn_hw.fit", "tfc"] and b["command"][:2] == ["abcn-hw", "train"]
    a["command"] = b["command"]
    for d in (a, b):
        d["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in d["history"]]
    _check_result(api.TrainResult(a), b)
    assert isinstance(run.model, __import__("torch").nn.Module)


def test_export_eval_lower_summary_equal_cli_json(tiny, capsys):
    d, onnx_path = tiny["dir"], tiny["onnx"]
    _check_result(ah.export(d / "run", d / "a.onnx", images=16),
                  cli_json(capsys, "export", d / "run", "--out", d / "b.onnx", "--images", "16", "--json")
                  | {"qonnx": str(d / "a.onnx")})
    _check_result(ah.evaluate(d / "run"), cli_json(capsys, "eval", d / "run", "--json"))
    low = ah.lower(onnx_path, d / "l1.onnx", inputs=d / "x.npy")
    cli = cli_json(capsys, "lower", onnx_path, "--out", d / "l2.onnx", "--report", "--inputs", d / "x.npy", "--json")
    _check_result(low, cli | {"out": str(d / "l1.onnx")})
    assert low.exact and low.output_equal == 1.0 and low.images == 48 and low.report.layers
    assert "measured on 48 inputs" in str(low)
    _check_result(ah.summary(onnx_path), cli_json(capsys, "summary", onnx_path, "--json"))


def test_compile_csim_verify_equal_cli_json(tiny, capsys):
    d, x = tiny["dir"], tiny["x"]
    _check_result(tiny["hw"], cli_json(capsys, "compile", tiny["onnx"], "--out", d / "build2", "--json")
                  | {"build_dir": str(d / "build")})
    assert tiny["hw"].estimate["lut"] > 0 and tiny["hw"].project.estimate.ii > 0
    sim = ah.csim(tiny["build"], x, out=d / "y1.npy")
    cli = cli_json(capsys, "csim", tiny["build"], "--inputs", d / "x.npy", "--out", d / "y2.npy", "--json")
    _check_result(sim, cli | {"out": str(d / "y1.npy")})
    assert np.array_equal(np.load(d / "y1.npy"), np.load(d / "y2.npy"))
    assert np.array_equal(sim.output, np.load(d / "y1.npy")) and sim.cycles_match
    ver = ah.verify(tiny["onnx"], tiny["build"], x, csim_result=sim)
    capsys.readouterr()
    assert main(["verify", str(tiny["onnx"]), str(tiny["build"]), "--inputs", str(d / "x.npy"), "--json"]) == 0
    _check_result(ver, json.loads(capsys.readouterr().out))
    assert ver.ok and ver.bit_exact and ver.mismatches == 0 and "verify: PASS" in str(ver)


def test_api_errors_are_the_cli_errors(tiny, tmp_path):
    from abcn_hw.errors import DataError, OutputPathError, UsageError

    with pytest.raises(OutputPathError, match="already exists"):
        ah.lower(tiny["onnx"], tiny["onnx"])
    with pytest.raises(DataError, match="float32"):
        ah.csim(tiny["build"], tiny["x"].astype(np.float64))
    with pytest.raises(UsageError, match="no such model file"):
        ah.lower(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    with pytest.raises(AttributeError, match="read-only"):
        tiny["hw"].build_dir = "x"


# -- progress -------------------------------------------------------------------------------------------

def test_progress_only_on_a_terminal(monkeypatch, capsys):
    assert not progress.wanted()  # pytest captures stderr: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.wanted() and not progress.wanted(quiet=True)
    progress.advance(5)  # no bar open: a no-op


def test_threshold_measurement_advances_the_bar(tiny):
    from abcn_hw.compiler import compare, lower

    lowered, _ = lower(__import__("onnx").load(str(tiny["onnx"])))
    x = tiny["x"]
    with progress.task("measure", total=2 * len(x), enabled=True) as bar:
        compare(str(tiny["onnx"]), lowered, x, batch=16)
        assert bar.n == 2 * len(x)  # the export and the lowered graph, batch by batch
    with progress.task("quiet", total=1, enabled=False) as bar:
        assert bar is None and not progress.active()


def test_csim_in_chunks_equals_one_batch(tiny, monkeypatch):
    """While a bar is shown, csim runs in chunks; the merged result equals one whole-batch run."""
    whole = ah.csim(tiny["build"], tiny["x"])
    monkeypatch.setattr(api, "CSIM_CHUNK", 20)
    monkeypatch.setattr(progress, "wanted", lambda quiet=False: not quiet)
    parts = ah.csim(tiny["build"], tiny["x"])
    assert np.array_equal(parts.output, whole.output)
    assert np.array_equal(parts.accumulators, whole.accumulators)
    # per stage: the same iterations per image (the calls of the top function depend on the batching)
    assert [{k: v for k, v in c.items() if k != "calls"} for c in parts.cycles] == \
        [{k: v for k, v in c.items() if k != "calls"} for c in whole.cycles]
    assert parts.cycles_match and whole.cycles_match
    assert parts.images == whole.images == len(tiny["x"])
    ver = ah.verify(tiny["onnx"], tiny["build"], tiny["x"])  # simulated here in chunks, then reused
    assert ver.ok and ver.images == len(tiny["x"])


def test_cli_json_has_no_progress_output(tiny, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    capsys.readouterr()
    assert main(["lower", str(tiny["onnx"]), "--out", str(tiny["dir"] / "l3.onnx"), "--report", "--inputs",
                 str(tiny["dir"] / "x.npy"), "--json"]) == 0
    out, err = capsys.readouterr()
    json.loads(out)
    assert "img/s" not in err and "measure thresholds" not in err
