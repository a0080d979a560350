"""Bad inputs, untrusted names, size limits, determinism, folding files, mismatch localisation, CLI."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from abcn_hw.backend import compile
from abcn_hw.errors import DataError, OutputPathError, UnsupportedModelError, UsageError
from abcn_hw.sim import csim, simulate, verify

EVIL = ['x"); system("rm -rf ~"); //', "../../etc/passwd", "a\nb */ #define x", "$(touch /tmp/pwned)", "`id`"]


def _text_files(build):
    for p in sorted(build.rglob("*")):
        if p.is_file() and ".csim" not in p.parts and p.suffix in ("", ".hpp", ".cpp", ".tcl", ".md") or p.name == "Makefile":
            yield p


# -- inputs ------------------------------------------------------------------------------------------

def test_csim_rejects_bad_inputs(tfc):
    _, x, build = tfc
    with pytest.raises(DataError, match="shape"):
        csim(build, x[:2, :, :27])
    with pytest.raises(DataError, match="float32"):
        csim(build, x[:2].astype(np.float64))
    bad = x[:3].copy()
    bad[1, 0, 3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        csim(build, bad)
    with pytest.raises(DataError, match="empty"):
        csim(build, x[:0])
    with pytest.raises(DataError):
        csim(build, list(x[:2]))


def test_not_a_build_dir(tmp_path, tfc):
    with pytest.raises(UsageError, match="not an abcn-hw build dir"):
        csim(tmp_path, tfc[1][:2])


def test_non_empty_build_dir_needs_force(tfc, tmp_path):
    path = tfc[0]
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(OutputPathError, match="not empty"):
        compile(path, out)
    compile(path, out, force=True)
    assert (out / "src" / "top.cpp").is_file()
    file_ = tmp_path / "f"
    file_.write_text("x")
    with pytest.raises(OutputPathError):
        compile(path, file_)


def test_unreadable_model(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x00not a model")
    with pytest.raises(UnsupportedModelError):
        compile(p, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def _lowered(tfc):
    from abcn_hw.backend.project import _load

    proto, _ = _load(tfc[0], None)
    return proto


def test_unmappable_lowered_graph_lists_nodes(tfc, tmp_path):
    proto = _lowered(tfc)
    g = proto.graph
    # an Identity on the bits between layer 0 and layer 1, and a Neg on the next layer's bits
    thr = [n for n in g.node if n.op_type == "MultiBaseThreshold"]
    for i, t in enumerate(thr[:2]):
        out = t.output[0]
        new = out + "_moved"
        for n in g.node:
            n.input[:] = [new if x == out else x for x in n.input]
        g.node.insert(list(g.node).index(t) + 1, helper.make_node("Identity" if i == 0 else "Neg", [out], [new],
                                                                   name=f"odd_node_{i}"))
    p = tmp_path / "odd.onnx"
    onnx.save(proto, p)
    with pytest.raises(UnsupportedModelError) as e:
        compile(p, tmp_path / "b")
    assert "odd_node_0" in str(e.value) and "odd_node_1" in str(e.value)
    assert not (tmp_path / "b").exists()


def test_float_model_is_unsupported(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [x], [y], [w])
    p = tmp_path / "float.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    with pytest.raises(UnsupportedModelError):
        compile(p, tmp_path / "b")


def test_residual_network_refused_with_a_clear_reason(tmp_path):
    """resnet8 lowers exactly but its residual joins stay float32: one clear error, nothing written."""
    from _models import zoo

    path, _ = zoo("resnet8", 1, 1, str(tmp_path / "r8.onnx"))
    with pytest.raises(UnsupportedModelError) as e:
        compile(path, tmp_path / "b")
    msg = str(e.value)
    assert "is not the last layer" in msg and "residual" in msg and "abcn-hw lower" in msg
    assert len(msg) < 1000  # a reason, not a list of every node behind the join
    assert not (tmp_path / "b").exists()


# -- size limits -------------------------------------------------------------------------------------

def test_size_limits_refused_before_writing(tfc, tmp_path, monkeypatch):
    from abcn_hw.backend import limits

    proto = _lowered(tfc)
    # a weight tensor that claims 16 x 2^20 x 2^10 bytes (128 Gibit) without carrying data
    wname = next(n.input[1] for n in proto.graph.node if n.op_type == "XnorPopcountMatMul")
    t = next(t for t in proto.graph.initializer if t.name == wname)
    t.ClearField("raw_data")
    del t.dims[:]
    t.dims.extend([16, 1 << 20, 1 << 10])
    p = tmp_path / "huge.onnx"
    onnx.save(proto, p)
    with pytest.raises(UnsupportedModelError, match="weight bits"):
        compile(p, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    # total limit with realistic sizes
    monkeypatch.setattr(limits, "MAX_TOTAL_WEIGHT_BITS", 1000)
    with pytest.raises(UnsupportedModelError, match="limit"):
        compile(tfc[0], tmp_path / "c")
    monkeypatch.setattr(limits, "MAX_TOTAL_WEIGHT_BITS", 1 << 28)
    monkeypatch.setattr(limits, "MAX_LAYER_THRESHOLDS", 10)
    with pytest.raises(UnsupportedModelError, match="thresholds"):
        compile(tfc[0], tmp_path / "c")
    assert not (tmp_path / "c").exists()


# -- untrusted names ---------------------------------------------------------------------------------

def _rename_all(proto: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(proto.SerializeToString())
    g = m.graph
    names = {}

    def evil(old: str) -> str:
        if old not in names:
            names[old] = EVIL[len(names) % len(EVIL)] + f"#{len(names)}"
        return names[old]

    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = evil(vi.name)
    for t in g.initializer:
        t.name = evil(t.name)
    for i, n in enumerate(g.node):
        n.input[:] = [evil(x) if x else x for x in n.input]
        n.output[:] = [evil(x) for x in n.output]
        n.name = EVIL[i % len(EVIL)] + f" {i}"
    g.name = EVIL[0]
    return m


def test_injection_names_never_reach_generated_files(tfc, tmp_path):
    path, x, _ = tfc
    evil = _rename_all(onnx.load(path))
    p = tmp_path / "evil.onnx"
    onnx.save(evil, p)
    build = tmp_path / "b"
    compile(p, build)
    root = build.resolve()
    for f in build.rglob("*"):
        assert str(f.resolve()).startswith(str(root))
    for f in _text_files(build):
        text = f.read_text()
        for bad in ("system(", "rm -rf ~", "etc/passwd", "$(touch", "`id`", "#define x"):
            assert bad not in text, (f, bad)
    for ident in re.findall(r"\bL\d+\w*", (build / "src" / "top.cpp").read_text()):
        assert re.fullmatch(r"[A-Za-z0-9_]+", ident)
    # the JSON files may carry the names, escaped
    json.loads((build / "report.json").read_text())
    json.loads((build / "folding.json").read_text())
    res = verify(p, build, x[:100])
    assert res.bit_exact and res.ok


def test_layer_ids_collision_free():
    from abcn_hw.backend.names import hint, layer_id

    ids = [layer_id(i, n) for i, n in enumerate(["a b", "a_b", "a/b", "", None, "a b"])]
    assert len(set(ids)) == len(ids)
    assert hint('x"); system("rm -rf ~"); //') == "x_system_rm_rf"
    assert hint("../../etc/passwd") == "etc_passwd"


# -- determinism, folding ----------------------------------------------------------------------------

def test_deterministic_project(tfc, tmp_path):
    path = tfc[0]
    compile(path, tmp_path / "a")
    compile(path, tmp_path / "b")
    fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    fb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert fa == fb and len(fa) > 15
    for rel in fa:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_folding_file_and_errors(tfc, tmp_path):
    path = tfc[0]
    res = compile(path, tmp_path / "a")
    fold = json.loads((tmp_path / "a" / "folding.json").read_text())
    fold["layers"][0]["PE"] = 4
    fold["layers"][1]["SIMD"] = 8
    fpath = tmp_path / "fold.json"
    fpath.write_text(json.dumps(fold))
    res = compile(path, tmp_path / "b", folding=str(fpath))
    layers = res.network.matrix_layers
    assert (layers[0].pe, layers[1].simd) == (4, 8)
    assert json.loads((tmp_path / "b" / "folding.json").read_text())["layers"][0]["PE"] == 4
    with pytest.raises(UsageError, match="does not divide"):
        compile(path, tmp_path / "c", folding={layers[0].ident: {"PE": 7}})
    with pytest.raises(UsageError, match="unknown layers"):
        compile(path, tmp_path / "c", folding={"nope": {"PE": 1}})
    with pytest.raises(UsageError, match="exclusive"):
        compile(path, tmp_path / "c", folding={}, target_fps=10)
    with pytest.raises(UsageError):
        compile(path, tmp_path / "c", target_fps=-1)
    assert not (tmp_path / "c").exists()
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["estimate"]["ii_cycles"] == res.estimate.ii
    assert "FINN-R" in rep["estimate"]["resource_model"]
    assert all(l["lut"] > 0 for l in rep["estimate"]["layers"])


def test_generated_code_compiles_with_wall_werror(tfc):
    """Makefile flags: the project builds with plain g++ -std=c++14 -Wall -Werror (no -march)."""
    import subprocess

    build = tfc[2]
    text = (build / "Makefile").read_text()
    assert "-std=c++14" in text and "-Wall -Werror" in text and "AP_TYPES ?=" in text
    r = subprocess.run(["make", "-s", "run"], cwd=build, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    shutil.rmtree(build / "build")


# -- mismatch localisation -----------------------------------------------------------------------------

def test_verify_names_first_differing_layer(tfc, tmp_path):
    path, x, build = tfc
    bad = tmp_path / "bad"
    shutil.copytree(build, bad, ignore=shutil.ignore_patterns(".csim", "build"))
    params = sorted((bad / "src").glob("params_L1_*.hpp"))[0]
    text = params.read_text()
    m = re.search(r"0x([0-9a-f]+)ULL", text)
    flipped = "0x%xULL" % (int(m.group(1), 16) ^ 0xFFFF)
    params.write_text(text[:m.start()] + flipped + text[m.end():])
    res = verify(path, bad, x[:200])
    assert not res.bit_exact and not res.ok and res.mismatches > 0
    assert res.first_mismatch_layer.startswith("L1_"), res.summary()
    assert res.layer_mismatches[sorted(res.layer_mismatches)[0]] == 0  # layer 0 still equal
    assert "first layer that differs: L1_" in res.summary()


def test_per_layer_dumps_equal_lowered_tensors(lenet33):
    from abcn_hw.sim.verify import _lowered_run

    path, x, build = lenet33
    r = simulate(build, x[:20], dump=True)
    low = onnx.load(str(build / "host" / "lowered.onnx"))
    names = list(r.taps)
    assert len(names) >= 4
    outs = _lowered_run(low, x[:20], names)
    assert np.array_equal(outs[0], r.output)
    for n, o in zip(names, outs[1:]):
        assert np.array_equal(o, r.taps[n]), r.tap_layers[n]


# -- CLI ----------------------------------------------------------------------------------------------

def test_cli_compile_csim_verify(tfc, tmp_path, capsys):
    import abcn_hw.backend.commands  # noqa: F401 - registers the commands
    from abcn_hw.cli import main

    path, x, build = tfc
    assert main(["compile", path, "--out", str(tmp_path / "b"), "--target-fps", "100000"]) == 0
    assert "FPS" in capsys.readouterr().out
    assert main(["compile", path, "--out", str(tmp_path / "b")]) == OutputPathError.exit_code
    np.save(tmp_path / "x.npy", x[:50])
    assert main(["csim", str(build), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (50, 10) and y.dtype == np.float32
    capsys.readouterr()
    assert main(["verify", path, str(build), "--inputs", str(tmp_path / "x.npy"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["bit_exact"] is True and d["images"] == 50 and d["mismatches"] == 0
    np.save(tmp_path / "bad.npy", x[:5].astype(np.float64))
    assert main(["csim", str(build), "--inputs", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "z.npy")]) == 1
    assert "float32" in capsys.readouterr().err
    # --threads: a bad count is a usage error before any simulation, nothing written
    assert main(["csim", str(build), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "t.npy"),
                 "--threads", "0"]) == 2
    assert "threads" in capsys.readouterr().err and not (tmp_path / "t.npy").exists()
    assert main(["csim", str(build), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "t.npy"),
                 "--threads", "3"]) == 0
    assert "3 threads" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "t.npy"), y)
