"""Reproducible builds: ``lower`` and ``compile`` are pure functions of the model file and options
(byte-identical across runs, processes, PYTHONHASHSEED values, model and build locations), and
``verify`` recognises its build dir by a canonical digest of the lowering."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from abcn_hw.backend.canonical import canonicalize, digest
from abcn_hw.compiler import lower
from abcn_hw.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]

#: one process lowers MODEL to OUT/lowered.onnx and compiles it to OUT/build, both via the CLI
_LOWER_AND_COMPILE = """
import sys
import abcn_hw.cli  # noqa: F401 - registers the commands
from abcn_hw.cli import main
model, out = sys.argv[1], sys.argv[2]
assert main(["lower", model, "--out", out + "/lowered.onnx"]) == 0
assert main(["compile", model, "--out", out + "/build"]) == 0
"""


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _two_runs(model: str, tmp: Path) -> tuple[Path, Path]:
    """Lower and compile ``model`` in two processes with different PYTHONHASHSEED, from another
    working directory and from a copy of the model in another folder."""
    src = Path(model)
    copy_dir = tmp / "elsewhere" / "models"
    copy_dir.mkdir(parents=True)
    for f in src.parent.glob(src.name + "*"):  # the model and its external data
        shutil.copy(f, copy_dir / f.name)
    outs = []
    for seed, path, cwd in (("0", str(src), str(tmp)), ("4242", str(copy_dir / src.name), str(copy_dir))):
        out = tmp / f"run{seed}"
        out.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", _LOWER_AND_COMPILE, path, str(out)], cwd=cwd, env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(out)
    return outs[0], outs[1]


def _assert_identical(a: Path, b: Path) -> None:
    assert (a / "lowered.onnx").read_bytes() == (b / "lowered.onnx").read_bytes()
    ta, tb = _tree(a / "build"), _tree(b / "build")
    assert sorted(ta) == sorted(tb) and len(ta) > 15
    assert [k for k in ta if ta[k] != tb[k]] == []


@pytest.fixture(scope="session")
def tfc_dynamo(workdir):
    """BNN-PYNQ TFC 1W1A exported with Brevitas' default (dynamo) exporter, not cleaned up."""
    from _models import bnn_pynq_raw

    d = workdir / "tfc_dynamo"
    d.mkdir()
    return bnn_pynq_raw("tfc_1w1a", str(d / "tfc_1w1a.onnx"), dynamo=True)


def _no_random_names(monkeypatch):
    """qonnx names new tensors with random strings; the lowering must never ask for one."""
    import qonnx.util.basic

    def refuse(*_a, **_k):
        raise AssertionError("the lowering asked qonnx for a random tensor name")

    monkeypatch.setattr(qonnx.util.basic, "random_string", refuse)


def _assert_no_stale_annotations(proto: onnx.ModelProto) -> None:
    g = proto.graph
    names = {t.name for t in g.initializer} | {v.name for v in list(g.input) + list(g.output)} \
        | {t for n in g.node for t in list(n.input) + list(n.output)}
    assert [a.tensor_name for a in g.quantization_annotation if a.tensor_name not in names] == []


def test_dynamo_tfc_lowers_without_random_names(tfc_dynamo, monkeypatch):
    _no_random_names(monkeypatch)
    low, rep = lower(onnx.load(tfc_dynamo[0]))
    assert rep.exact and len(rep.layers) == 4
    _assert_no_stale_annotations(low.model)


def test_lower_and_compile_identical_across_processes(tfc_dynamo, tmp_path):
    """The issue's case: the dynamo TFC export, two processes, different hash seeds and paths."""
    _assert_identical(*_two_runs(tfc_dynamo[0], tmp_path))


def test_cli_compile_then_verify_dynamo_export(tfc_dynamo, tmp_path, capsys):
    """compile and verify each lower the model themselves; verify recognises the build dir."""
    from abcn_hw.cli import main

    path, x = tfc_dynamo
    np.save(tmp_path / "x.npy", x[:32])
    assert main(["compile", path, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["verify", path, str(tmp_path / "b"), "--inputs", str(tmp_path / "x.npy")]) == 0
    assert "verify: PASS" in capsys.readouterr().out


def test_digest_ignores_names_and_stale_annotations_not_values(tfc):
    """Two lowerings that differ only in tensor names (and leftover annotations) have one digest;
    a changed threshold changes it, and verify then refuses the build dir."""
    from onnx import numpy_helper

    from abcn_hw.sim import verify

    path, x, build = tfc
    low, _ = lower(onnx.load(path))
    renamed = onnx.ModelProto.FromString(low.model.SerializeToString())
    g = renamed.graph
    keep = {v.name for v in list(g.input) + list(g.output)}
    # tensors whose names no node name repeats (the canonical form keeps node names, with any
    # tensor name inside them replaced: a lowering that renamed those would rename the nodes too)
    names = sorted(t for t in {t for n in g.node for t in list(n.input) + list(n.output)} - keep
                   if not any(t in n.name for n in g.node))
    assert len(names) >= 8
    new = {n: f"zz{i * 7919 % 1000:03d}_{n[::-1]}" for i, n in enumerate(names)}
    for n in g.node:
        n.input[:] = [new.get(t, t) for t in n.input]
        n.output[:] = [new.get(t, t) for t in n.output]
    for t in g.initializer:
        t.name = new.get(t.name, t.name)
    for a in g.quantization_annotation:
        a.tensor_name = new.get(a.tensor_name, a.tensor_name)
    for p in renamed.metadata_props:  # the lowering's probes name lowered tensors
        if p.key.startswith("abcn_hw.probe."):
            t = p.key[len("abcn_hw.probe."):]
            p.key = "abcn_hw.probe." + new.get(t, t)
    stale = g.quantization_annotation.add()
    stale.tensor_name = "Xy12Ab"
    stale.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value="FLOAT32"))
    assert renamed.SerializeToString() != low.model.SerializeToString()
    assert digest(renamed) == digest(low.model) == digest(onnx.load(str(build / "host" / "lowered.onnx")))
    assert canonicalize(canonicalize(renamed)).SerializeToString() == canonicalize(renamed).SerializeToString()

    # one threshold moved by one step: another lowering
    thr = next(n for n in g.node if n.op_type == "MultiBaseThreshold")
    init = next(t for t in g.initializer if t.name in thr.input and numpy_helper.to_array(t).dtype.kind in "iu"
                and numpy_helper.to_array(t).size > 1)
    value = numpy_helper.to_array(init).copy()
    value.flat[0] += 1
    init.CopyFrom(numpy_helper.from_array(value, init.name))
    assert digest(renamed) != digest(low.model)
    tampered = build.parent / "build_tfc_tampered"
    shutil.copytree(build, tampered, ignore=shutil.ignore_patterns(".csim"))
    try:
        onnx.save(renamed, str(tampered / "host" / "lowered.onnx"))
        with pytest.raises(UsageError, match="another lowering"):
            verify(path, tampered, x[:4])
    finally:
        shutil.rmtree(tampered)


@pytest.mark.slow
@pytest.mark.parametrize("name,dynamo", [("tfc_1w1a", False), ("cnv_1w1a", True), ("cnv_1w1a", False)])
def test_bnn_pynq_exports_reproducible(name, dynamo, tmp_path, monkeypatch):
    from _models import bnn_pynq_raw

    path, _ = bnn_pynq_raw(name, str(tmp_path / f"{name}.onnx"), dynamo=dynamo)
    with monkeypatch.context() as m:
        _no_random_names(m)
        low, _ = lower(onnx.load(path))
    _assert_no_stale_annotations(low.model)
    _assert_identical(*_two_runs(path, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name,m,n", [("lenet", 3, 3), ("tfc", 2, 2), ("cnv", 2, 2)])
def test_zoo_models_reproducible(name, m, n, tmp_path, monkeypatch):
    from _models import zoo

    path, _ = zoo(name, m, n, str(tmp_path / f"{name}{m}{n}.onnx"))
    with monkeypatch.context() as mp:
        _no_random_names(mp)
        lower(onnx.load(path))
    _assert_identical(*_two_runs(path, tmp_path))
