"""The fast slice of the fuzz campaign (scripts/fuzz.py runs the long one) and the model loader's
contract: hostile model files are refused with one line and nothing written; random Brevitas nets end
bit-exact or refused, never a wrong answer or a traceback."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, os.path.dirname(__file__))
import _fuzz  # noqa: E402
import _nets  # noqa: E402

#: a slice of the fixed corpus that every command must refuse (cheap: no g++ build)
FAST_SLICE = ("empty file", "truncated at 50.0%", "random bytes", "export: missing initializer", "export: cyclic graph",
              "export: opset 999", "export: zero input dim", "export: huge initializer dims without data",
              "export: NaN weight", "export: external data: ../ outside the folder",
              "export: external data: link to outside", "export: external data: FIFO in the folder",
              "export: duplicate tensor names", "export: empty graph", "export: recursive model-local function",
              "lowered: cyclic graph", "lowered: Inf constant", "lowered: external data: absolute path",
              "export: Transpose perm with a repeated axis", "export: op type not valid UTF-8",
              "export: weight scale of a transposed shape", "export: conv stride 0", "export: max-pool stride 0")


def test_inconsistent_lowered_graphs_refused_by_compile(ctx, corpus):
    """Lowered graphs whose packed weights, threshold directions or pool geometry disagree with the
    convention: compile refuses them (these compiled, and C simulation then differed from the graph)."""
    for name, reason in (("weight padding bit set", "padding bits must be 0"),
                         ("threshold direction 0", "directions must be +1 or -1"), ("max-pool stride changed", ""),
                         ("accumulator overflows int32", "computes it in int32")):
        outs = _fuzz.run_hostile(f"lowered: {name}", corpus[f"lowered: {name}"], ctx, commands=("compile",))
        _assert_clean(outs)
        assert reason in outs[0].reason, outs[0].reason


def test_edited_function_body_never_reaches_the_design_or_the_reference(ctx, corpus):
    """A lowered graph whose model-local function (the ONNX body onnxruntime runs for an abcn-hw op)
    was edited: the fuzz campaign's one wrong answer (a random bit flip inside a body compiled, and
    csim differed from the graph). The ops are defined by abcn-hw: compile and verify use this
    version's bodies, so the build's reference is the design's definition and verify passes
    bit-exact; onnxruntime on the edited file itself computes something else (the edit is real)."""
    import onnxruntime as ort

    from abcn_hw.compiler.ops import function_protos

    name = "lowered: function body changed"
    x = np.load(ctx.x)

    def run(p):
        m = onnx.load(str(p))
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {m.graph.input[0].name: x})[0]

    assert not np.array_equal(run(corpus[name]), run(ctx.lowered))
    [o] = _fuzz.run_hostile(name, corpus[name], ctx, commands=("compile",))
    assert o.result == "accepted" and "verified exact" in o.reason, (o.result, o.reason, o.details)
    from abcn_hw.backend import compile

    compile(corpus[name], corpus[name].parent / "b")
    built = onnx.load(str(corpus[name].parent / "b" / "host" / "lowered.onnx"))
    canon = {f.name: f.SerializeToString(deterministic=True) for f in function_protos(["MultiBaseAccumulate"])}
    got = {f.name: f.SerializeToString(deterministic=True) for f in built.functions}
    assert got["MultiBaseAccumulate"] == canon["MultiBaseAccumulate"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return _fuzz.HostileContext.make(tmp_path_factory.mktemp("hostile_ctx"))


@pytest.fixture(scope="module")
def corpus(ctx, tmp_path_factory):
    return dict(_fuzz.fixed_corpus(ctx, tmp_path_factory.mktemp("hostile")))


def _assert_clean(outcomes):
    bad = [(o.case, o.result, o.reason) for o in outcomes if o.result != "refused"]
    assert not bad, bad


def test_hostile_files_refused_by_every_command(ctx, corpus):
    outs = [o for name in FAST_SLICE for o in _fuzz.run_hostile(name, corpus[name], ctx)]
    _assert_clean(outs)
    assert len(outs) == 4 * len(FAST_SLICE)


def test_whole_fixed_corpus_refused_by_lower(ctx, corpus):
    """Every hostile file of the corpus (of an export and of a lowered graph) through `lower`:
    refused with one line, or (for the few that are still valid graphs) lowered."""
    outs = [o for name, p in corpus.items() for o in _fuzz.run_hostile(name, p, ctx, commands=("lower",))]
    assert not [o for o in outs if o.failed], [(o.case, o.reason) for o in outs if o.failed]
    accepted = sorted(o.case for o in outs if o.result == "accepted")
    # still valid models: renamed tensors, shuffled node order; nothing else
    assert all(any(k in a for k in ("names", "out of order")) and a.startswith("export") for a in accepted), accepted
    assert sum(o.result == "refused" for o in outs) >= len(outs) - 4


def test_external_data_outside_the_folder_is_never_opened(ctx, corpus, monkeypatch):
    """The reference is refused before onnx reads any external data (a FIFO would block a reader)."""
    import onnx.external_data_helper as edh

    from abcn_hw.compiler.modelfile import read_model
    from abcn_hw.errors import UnsupportedModelError

    reads = []
    real = edh.load_external_data_for_tensor
    monkeypatch.setattr(edh, "load_external_data_for_tensor", lambda t, d: (reads.append(t.name), real(t, d))[1])
    for name in ("absolute path", "../ outside the folder", "link to outside", "FIFO in the folder"):
        with pytest.raises(UnsupportedModelError, match="outside the model's folder|not a regular file"):
            read_model(corpus[f"export: external data: {name}"])
    assert reads == []


def test_external_data_inside_the_folder_loads(ctx, tmp_path, monkeypatch):
    """A model whose weights live in a file next to it (onnx's save_as_external_data) lowers to the
    same graph as the self-contained file (read through the function the test above watches)."""
    import onnx.external_data_helper as edh

    from abcn_hw.compiler import lower_file

    reads = []
    real = edh.load_external_data_for_tensor
    monkeypatch.setattr(edh, "load_external_data_for_tensor", lambda t, d: (reads.append(t.name), real(t, d))[1])

    m = onnx.load(str(ctx.export))
    d = tmp_path / "ext"
    d.mkdir()
    onnx.save(m, str(d / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    assert (d / "w.bin").stat().st_size > 0
    lower_file(d / "m.onnx", tmp_path / "a.onnx")
    assert reads
    lower_file(ctx.export, tmp_path / "b.onnx")
    a, b = onnx.load(str(tmp_path / "a.onnx")), onnx.load(str(tmp_path / "b.onnx"))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    assert {t.name: t.raw_data for t in a.graph.initializer} == {t.name: t.raw_data for t in b.graph.initializer}


def test_error_line_escapes_control_characters():
    from abcn_hw.cli import _error_line

    line = _error_line("lower", "node '\x1b[31mred\x07' is\tbad\r(x)")
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert "\\x1b[31mred\\x07" in line and line.startswith("abcn-hw lower: error: ")


def test_random_mutations_never_traceback(ctx, tmp_path):
    rng = random.Random(5)
    outs = []
    for i in range(6):
        name, p = _fuzz.random_case(ctx, tmp_path, i, rng)
        outs += _fuzz.run_hostile(name, p, ctx, commands=("lower", "summary"))
    assert not [o for o in outs if o.failed], [(o.case, o.result, o.reason) for o in outs if o.failed]


def test_cli_process_refuses_hostile_file(corpus, tmp_path):
    """A real `abcn-hw` process: exit code 2, one line on stderr, no traceback, nothing written."""
    out = tmp_path / "o.onnx"
    p = subprocess.run([sys.executable, "-m", "abcn_hw.cli", "lower", str(corpus["export: cyclic graph"]), "--out",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert _fuzz.check_error("lower", p.returncode, p.stderr, out) is None, p.stderr
    assert p.returncode == 2 and "cycle" in p.stderr


# -- random Brevitas nets ----------------------------------------------------------------------------------


def _check_net(outcome):
    assert not outcome.failed, (outcome.case, outcome.result, outcome.reason, outcome.details.get("traceback"))
    assert outcome.result in ("exact", "rounded", "refused"), (outcome.case, outcome.result, outcome.reason)


def test_hand_written_brevitas_net_bit_exact(tmp_path):
    """The corpus' base net (binary input, conv + BN + max-pool, FC with per-channel power-of-two
    scales, final BN), written with plain Brevitas layers and exported with the default (dynamo)
    exporter: compiles and verifies bit-exact, and the lowered graph equals the export."""
    spec = _nets.NetSpec(**{**_nets.BASE_SPEC.__dict__, "dynamo": True})
    o = _fuzz.run_net_case(spec, tmp_path, images=32)
    _check_net(o)
    assert o.result == "exact", (o.reason, o.details)
    assert o.details["output_equal"] == 1.0 and o.details["bit_exact"]


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(_nets.net_specs())
def test_random_brevitas_nets_many(tmp_path_factory, spec):
    _check_net(_fuzz.run_net_case(spec, tmp_path_factory.mktemp("net"), images=64))


@pytest.mark.slow
def test_random_brevitas_net_through_the_cli(tmp_path):
    spec = _nets.NetSpec(**{**_nets.BASE_SPEC.__dict__, "seed": 11})
    o = _fuzz.run_net_case(spec, tmp_path, images=32, via_cli=True)
    _check_net(o)
    assert o.result == "exact", (o.reason, o.details)


@pytest.mark.slow
def test_whole_fixed_corpus_every_command(ctx, corpus):
    outs = [o for name, p in corpus.items() for o in _fuzz.run_hostile(name, p, ctx)]
    assert not [o for o in outs if o.failed], [(o.case, o.result, o.reason) for o in outs if o.failed]
    assert np.mean([o.result == "refused" for o in outs]) > 0.9
