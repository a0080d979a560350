"""The host steps in C++ (abcn_hw/backend/host_native.py -> tb/csim_host.cpp) equal their reference,
the ONNX host graphs run by onnxruntime plus the numpy stream packing (abcn_hw/sim/host.py), bit for
bit: on hand-made host graphs that use every translated op and stream layout (straddling fields,
non-identity packing orders, broadcast constants, 64-bit accumulators), on the compiled zoo and
BNN-PYNQ networks (tests/backend/_native.py, called from test_end_to_end.py), and on edge inputs."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from _native import EXTREMES, assert_native_host_exact, bits, edge_images, load, native_post, native_pre, \
    onnx_post, onnx_pre, random_output_words
from onnx import TensorProto, helper, numpy_helper

from abcn_hw.backend import host_native
from abcn_hw.compiler.ops import DOMAIN, function_protos
from abcn_hw.errors import DataError, UsageError
from abcn_hw.sim import simulate
from abcn_hw.sim.csim import CSIM_EXTRA_FLAGS, CXX_FLAGS

TEMPLATES = host_native.__file__.rsplit("/", 1)[0] + "/templates"
STUB = """#include <cstdint>
extern "C" int abcn_csim_batch(const std::uint64_t *, std::uint64_t, std::uint64_t *, unsigned, std::uint64_t *,
                               double *) { return 0; }
extern "C" unsigned long long abcn_csim_info(unsigned) { return 0; }
"""


def _model(nodes, inp, out, inits, custom=()) -> bytes:
    g = helper.make_graph(nodes, "g", [inp], [out], [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 20)] + ([helper.make_opsetid(DOMAIN, 1)] if custom else [])
    m = helper.make_model(g, opset_imports=ops, ir_version=10)
    m.functions.extend(function_protos(list(custom)) if custom else [])
    return m.SerializeToString()


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, ["batch", *shape])


def _io(in_shape, accel, out_shape, acc):
    a = dict(accel)
    o = dict(acc)
    o["words"] = o["vectors"] * (o["mh"] // o["pe"])
    o["width"] = o["pe"] * o["acc_w"]
    return {"input_shape": list(in_shape), "output_shape": list(out_shape), "accel_input": a, "accel_output": o,
            "stages": []}


def _post_affine(acc_type, acc_shape, out_shape, extra_nodes=(), extra_inits=None):
    """Cast -> Mul (per channel) -> Sub (scalar) -> Div (per channel) -> Add, then ``extra_nodes``."""
    rng = np.random.default_rng(len(out_shape))
    mh = acc_shape[0]
    per_channel = (1, mh) + (1,) * (len(acc_shape) - 1)
    nodes = [helper.make_node("Cast", ["acc"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "s"], ["m"]),
             helper.make_node("Sub", ["m", "z"], ["d"]),
             helper.make_node("Div", ["d", "q"], ["e"]),
             helper.make_node("Add", ["e", "b"], ["y0" if extra_nodes else "y"])] + list(extra_nodes)
    inits = {"s": rng.uniform(-2, 2, per_channel).astype(np.float32), "z": np.float32(0.37),
             "q": rng.uniform(0.5, 3, per_channel).astype(np.float32),
             "b": rng.normal(size=acc_shape[-1:]).astype(np.float32)}
    inits.update(extra_inits or {})
    return _model(nodes, _vi("acc", acc_type, list(acc_shape)), _vi("y", TensorProto.FLOAT, out_shape), inits)


def case_int_conv():
    """8-pixel conv input of 30 channels, 3-bit signed fields, SIMD 30: 90-bit words (a field
    straddles the chunks); per-channel Mul (dyadic: the grid inputs give exact rounding ties),
    constant-first Sub, Div, Neg, Clip to -4.5 .. 3.5 (Round(3.5) = 4 is outside the 3-bit range,
    so inputs that reach it are refused), Round, Cast."""
    c, h, w = 30, 2, 4
    rng = np.random.default_rng(1)
    pre = _model([helper.make_node("Mul", ["x", "k"], ["a"]), helper.make_node("Sub", ["o", "a"], ["b"]),
                  helper.make_node("Div", ["b", "d"], ["e"]), helper.make_node("Neg", ["e"], ["f"]),
                  helper.make_node("Clip", ["f", "lo", "hi"], ["g"]), helper.make_node("Round", ["g"], ["r"]),
                  helper.make_node("Cast", ["r"], ["t"], to=TensorProto.INT32)],
                 _vi("x", TensorProto.FLOAT, [c, h, w]), _vi("t", TensorProto.INT32, [c, h, w]),
                 {"k": rng.choice([0.5, 0.75, 1.0, 1.5, 2.0], (1, c, 1, 1)).astype(np.float32), "o": np.float32(0.25),
                  "d": np.float32(1.0), "lo": np.float32(-4.5), "hi": np.float32(3.5)})
    accel = {"kind": "int", "shape": [c, h, w], "in_bits": 3, "signed": True, "lo": -4, "hi": 3, "simd": 30,
             "conv": True, "words": h * w, "width": 90}
    acc = {"mh": 5, "pe": 1, "acc_w": 10, "vectors": 1, "dtype": "int32"}
    return pre, _post_affine(TensorProto.INT32, (5,), [5]), _io((c, h, w), accel, (5,), acc)


def case_int_fc():
    """Flatten + Unsqueeze/Squeeze + Floor/Ceil/Abs to a 7-bit FC input, 14 fields per 98-bit word;
    64-bit accumulators of 3 channels, reshaped by the post graph."""
    pre = _model([helper.make_node("Flatten", ["x"], ["a"]), helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
                  helper.make_node("Mul", ["b", "k"], ["c"]), helper.make_node("Squeeze", ["c", "ax"], ["d"]),
                  helper.make_node("Abs", ["d"], ["e"]), helper.make_node("Floor", ["e"], ["f"]),
                  helper.make_node("Ceil", ["f"], ["g"]), helper.make_node("Clip", ["g", "lo", "hi"], ["r"]),
                  helper.make_node("Cast", ["r"], ["t"], to=TensorProto.INT32)],
                 _vi("x", TensorProto.FLOAT, [2, 3, 7]), _vi("t", TensorProto.INT32, [42]),
                 {"ax": np.array([2], np.int64), "k": np.float32(37.5), "lo": np.float32(-64), "hi": np.float32(63)})
    accel = {"kind": "int", "shape": [42], "in_bits": 7, "signed": True, "lo": -64, "hi": 63, "simd": 14,
             "conv": False, "words": 3, "width": 98}
    acc = {"mh": 3, "pe": 1, "acc_w": 64, "vectors": 1, "dtype": "int64"}
    post = _post_affine(TensorProto.INT64, (3,), [3, 1], [helper.make_node("Unsqueeze", ["y0", "ax"], ["y"])],
                        {"ax": np.array([2], np.int64)})
    return pre, post, _io((2, 3, 7), accel, (3, 1), acc)


def case_bits_conv():
    """Two activation bases (FloatBaseQuant) of a 4x3x3 conv input, SIMD 2 (a non-identity packing
    order), after an Add of a constant broadcast over non-adjacent axes; 40-bit accumulators, PE 3,
    2 output vectors (120-bit words)."""
    c, h, w = 4, 3, 3
    rng = np.random.default_rng(3)
    pre = _model([helper.make_node("Add", ["x", "k"], ["a"]),
                  helper.make_node("FloatBaseQuant", ["a"], ["t"], domain=DOMAIN, shifts=[-0.5, 0.25])],
                 _vi("x", TensorProto.FLOAT, [c, h, w]), _vi("t", TensorProto.UINT8, [2, c, h, w]),
                 {"k": rng.uniform(-1, 1, (c, 1, w)).astype(np.float32)}, custom=["FloatBaseQuant"])
    accel = {"kind": "bits", "shape": [2, c, h, w], "in_bits": 1, "signed": False, "lo": 0, "hi": 1, "simd": 2,
             "conv": True, "words": h * w * c // 2, "width": 4}
    acc = {"mh": 6, "pe": 3, "acc_w": 40, "vectors": 2, "dtype": "int64"}
    return pre, _post_affine(TensorProto.INT64, (6, 2), [6, 2]), _io((c, h, w), accel, (6, 2), acc)


def case_bits_fc():
    """A 2-bit signed quantiser as 3 thermometer bits (FloatQuantBits) of 12 inputs, SIMD 4;
    20-bit accumulators, PE 5 (100-bit words)."""
    pre = _model([helper.make_node("Reshape", ["x", "s"], ["a"]),
                  helper.make_node("FloatQuantBits", ["a"], ["t"], domain=DOMAIN, scale=0.3, zero_point=0.5,
                                   bitwidth=2, signed=1, narrow=0)],
                 _vi("x", TensorProto.FLOAT, [3, 4]), _vi("t", TensorProto.UINT8, [3, 12]),
                 {"s": np.array([0, -1], np.int64)}, custom=["FloatQuantBits"])
    accel = {"kind": "bits", "shape": [3, 12], "in_bits": 1, "signed": False, "lo": 0, "hi": 1, "simd": 4,
             "conv": False, "words": 3, "width": 12}
    acc = {"mh": 5, "pe": 5, "acc_w": 20, "vectors": 1, "dtype": "int32"}
    return pre, _post_affine(TensorProto.INT32, (5,), [5]), _io((3, 4), accel, (5,), acc)


CASES = {"int_conv": case_int_conv, "int_fc": case_int_fc, "bits_conv": case_bits_conv, "bits_fc": case_bits_fc}


def _compile(tmp_path, src: str):
    (tmp_path / "host.cpp").write_text(src)
    (tmp_path / "stub.cpp").write_text(STUB)
    out = tmp_path / "libhost.so"
    # the C-simulation library's own flags (-O3 -march=native: pre()'s loops vectorised as there)
    r = subprocess.run([shutil.which("g++") or "g++", *CXX_FLAGS, *CSIM_EXTRA_FLAGS, "-ffp-contract=off", "-fPIC",
                        "-shared", "-I", TEMPLATES, "host.cpp", "stub.cpp", "-o", str(out)],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return load(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_host_code_equals_the_onnx_graphs(name, tmp_path):
    pre, post, io = CASES[name]()
    src = host_native.host_source(pre, post, io)
    lib = _compile(tmp_path, src)
    rng = np.random.default_rng(7)
    shape = tuple(io["input_shape"])
    x = np.concatenate([rng.uniform(-1.5, 1.5, (40, *shape)).astype(np.float32), edge_images(shape, rng, False),
                        np.resize(np.array(EXTREMES, np.float32), (3, *shape))])
    refused = 0
    for i in range(len(x)):  # image by image: the reference refuses a whole batch
        rc, bad, words = native_pre(lib, io, x[i:i + 1])
        try:
            ref = onnx_pre(pre, io, x[i:i + 1])
        except ValueError:
            assert rc == 5, (i, rc)  # abcn_host::ERR_RANGE
            refused += 1
            continue
        assert rc == 0, (i, rc)
        assert np.array_equal(words, ref), (i, np.argwhere(words != ref)[:4])
    if name == "int_conv":
        assert 0 < refused < len(x) - 40  # (the random images stay inside the range)
    words = random_output_words(io, 50, rng)
    y, acc = native_post(lib, io, words, 50)
    y_ref, acc_ref = onnx_post(post, io, words, 50)
    assert np.array_equal(acc, acc_ref)
    assert np.array_equal(bits(y), bits(y_ref))


def test_non_finite_inputs_are_refused_by_both_host_paths(tfc):
    _, x, build = tfc
    xs = np.array(x[:5])
    xs[3, 0, 4, 4] = np.nan
    for host in ("native", "onnx"):
        with pytest.raises(DataError, match="NaN or infinite"):
            simulate(build, xs, host=host)
    xs[3, 0, 4, 4] = -np.inf
    with pytest.raises(DataError, match=r"image 3"):
        simulate(build, xs, host="native")


def test_native_host_on_tfc_and_lenet33(tfc, lenet33):
    for _, x, build in (tfc, lenet33):
        assert_native_host_exact(build, x)
        assert simulate(build, x[:3]).host == "native"  # the default


def test_unsupported_host_graphs_keep_the_onnx_path(tfc, tmp_path):
    """A host graph with an op the translation does not cover: no tb/csim_host.cpp, the reason in
    io.json, simulate runs the ONNX host graphs (host='native' is a clear error)."""
    pre, post, io = case_bits_fc()
    m = onnx.load_from_string(pre)
    m.graph.node.insert(0, helper.make_node("Sigmoid", ["x"], ["x2"]))
    m.graph.node[1].input[0] = "x2"
    src, rec = host_native.generate(m.SerializeToString(), post, io)
    assert src is None and not rec["supported"] and "Sigmoid" in rec["reason"]
    m = onnx.load_from_string(pre)
    m.graph.node[0].input[1] = "x"  # Reshape with a computed shape
    assert host_native.generate(m.SerializeToString(), post, io)[0] is None

    _, x, build = tfc
    b = tmp_path / "b"
    shutil.copytree(build, b)  # with its compiled library (same sources: same key)
    io = json.loads((b / "host" / "io.json").read_text())
    io["host_native"] = {"supported": False, "reason": "Sigmoid is not translated"}
    (b / "host" / "io.json").write_text(json.dumps(io))
    with pytest.raises(UsageError, match="native host path is not available.*Sigmoid"):
        simulate(b, x[:4], host="native")
    r, ref = simulate(b, x[:4]), simulate(build, x[:4])
    assert (r.host, ref.host) == ("onnx", "native") and np.array_equal(r.output, ref.output)
    with pytest.raises(UsageError, match="unknown host path"):
        simulate(b, x[:4], host="cpp")


def test_float_literals_round_trip():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(size=2000).astype(np.float32) * np.float32(10) ** rng.integers(-40, 38, 2000),
                           np.array([1e-45, -1e-45, 3.4028235e38, 1.1754942e-38, 0.1, 1 / 3], np.float32)])
    for v in vals.astype(np.float32):
        if np.isfinite(v):
            assert np.float32(float(host_native.float_lit(v)[:-1])) == v
    assert host_native.float_lit(np.float32(-0.0)) == "-0.0f"
    with pytest.raises(host_native.NativeHostUnsupported):
        host_native.float_lit(np.float32(np.inf))


def test_native_host_in_blocks(tfc, monkeypatch):
    """The batch goes to the design in blocks through two input regions (design_process.run_host),
    and inside the library in smaller blocks that the threads take in turn (abcn_host.hpp): any
    block size gives the same outputs and per-image counts, and a refused image is named by its
    index in the whole batch (the first one, whichever thread met it)."""
    from abcn_hw.sim import design_process

    _, x, build = tfc
    ref = simulate(build, x[:50], host="onnx")
    for images_per_block in (1, 7, 50):
        monkeypatch.setattr(design_process, "HOST_BLOCK_BYTES", images_per_block * 784 * 4)
        r = simulate(build, x[:50], host="native", threads=2)
        assert np.array_equal(bits(r.output), bits(ref.output)) and np.array_equal(r.accumulators, ref.accumulators)
        assert [c["counted"] for c in r.counts] == [c["counted"] for c in ref.counts] and r.cycles_match
        xs = np.array(x[:50])
        xs[23, 0, 5, 5] = np.inf
        with pytest.raises(DataError, match=r"\(image 23\)"):
            simulate(build, xs, host="native")
        # two refused images in blocks that different threads take: the first one is named
        xs[41, 0, 2, 2] = np.nan
        for _ in range(3):
            with pytest.raises(DataError, match=r"\(image 23\)"):
                simulate(build, xs, host="native", threads=2)


def test_cli_host_option(tfc, tmp_path, capsys, monkeypatch):
    """``--host`` of csim and verify picks the host path (reported in the JSON; both paths give the
    same outputs); a bad value is a one-line usage error before anything is written, and
    ``--host native`` with the per-layer dump is refused."""
    from abcn_hw.cli import _HOSTS, main
    from abcn_hw.sim.csim import HOSTS

    assert _HOSTS == HOSTS
    path, x, build = tfc
    np.save(tmp_path / "x.npy", x[:20])
    ys = {}
    for host in ("native", "onnx", "auto"):
        out = tmp_path / f"y_{host}.npy"
        assert main(["csim", str(build), "--inputs", str(tmp_path / "x.npy"), "--out", str(out), "--host", host,
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["host"] == ("native" if host == "auto" else host)
        ys[host] = np.load(out)
    assert np.array_equal(bits(ys["native"]), bits(ys["onnx"])) and np.array_equal(ys["auto"], ys["native"])
    assert main(["verify", path, str(build), "--inputs", str(tmp_path / "x.npy"), "--host", "onnx", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bit_exact"] is True
    for cmd in (["csim", str(build), "--out", str(tmp_path / "bad.npy")], ["verify", path, str(build)]):
        assert main([*cmd, "--inputs", str(tmp_path / "x.npy"), "--host", "cpp"]) == UsageError.exit_code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--host" in err and "native" in err and "Traceback" not in err
    assert not (tmp_path / "bad.npy").exists()
    with monkeypatch.context() as m:  # refused before the per-layer driver's g++ build
        m.setattr("abcn_hw.sim.build", lambda *a, **k: pytest.fail("built the dump driver before refusing"))
        assert main(["csim", str(build), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "d.npy"),
                     "--dump", str(tmp_path / "dump"), "--host", "native"]) == UsageError.exit_code
    err = capsys.readouterr().err
    assert "native host path is not available" in err and "dump" in err and not (tmp_path / "d.npy").exists()
