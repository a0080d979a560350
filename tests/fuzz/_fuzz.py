"""The fuzz harness shared by tests/fuzz/test_fuzz.py (a fast slice) and scripts/fuzz.py (the campaign).

Two kinds of cases, each ending in one :class:`Outcome`:

* ``net``: a random Brevitas net (tests/fuzz/_nets.py) exported with export_qonnx → lower → compile →
  verify (C simulation vs lowered graph). ``exact``: csim equals the lowered graph on every element
  and the lowered graph equals the executed export bit for bit; ``rounded``: csim equals the lowered
  graph, the lowering rounded some scales and the export agrees on ≥ 99.9 % of predictions;
  ``refused``: a one-line AbcnError before anything was written. Failures: ``wrong`` (csim differs
  from the lowered graph, or a layer reported exact differs from the export), ``below-contract``
  (rounded, < 99.9 % agreement, and nothing refused it), ``traceback`` (any other exception).
* ``hostile``: a corrupted or hostile model file through ``abcn-hw lower / compile / verify /
  summary`` (cli.main in process): it must exit non-zero with one line ``abcn-hw <cmd>: error: ...``
  (at most a few indented detail lines after it; no control characters) and write nothing at the output location; anything else is ``traceback``
  or ``bad-error``.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import _nets  # noqa: E402

CONTRACT = 0.999
FAILURES = ("wrong", "below-contract", "traceback", "bad-error", "timeout")


@dataclass
class Outcome:
    kind: str  # "net" | "hostile"
    case: str
    result: str  # exact | rounded | refused | wrong | below-contract | traceback | bad-error | timeout
    stage: str = ""
    reason: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.result in FAILURES

    def to_dict(self) -> dict:
        return asdict(self)


class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    """SIGALRM-based limit on one case (main thread only; no limit elsewhere)."""
    import threading

    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise CaseTimeout(f"case ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def reason_key(message: str) -> str:
    """A refusal message without its specifics (quoted names, numbers, paths), to group by reason."""
    m = re.sub(r"^abcn-hw \w+: error: ", "", message.strip())
    m = re.sub(r"\s\([^()]*(/|\\)[^()]*\)\.", ".", m)  # " (path/of/the/model)." location
    m = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", m)
    m = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", m)
    m = m.split(". ")[0]
    return m[:160]


def _tail(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''} [{where}]"


# -- nets ---------------------------------------------------------------------------------------------------

def run_net_case(spec: _nets.NetSpec, work: Path, images: int = 64, via_cli: bool = False,
                 limit_s: int = 600) -> Outcome:
    """export → lower → compile → verify one net; never raises."""
    from abcn_hw.errors import AbcnError

    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    out = Outcome("net", spec.short(), "?", details={"spec": spec.to_dict(), "via_cli": via_cli})
    stage = "export"
    try:
        with time_limit(limit_s):
            net = _nets.build(spec)
            model = _nets.export(net, spec, str(work / "model.onnx"))
            x = _nets.inputs(spec, images, spec.seed + 3)
            np.save(work / "x.npy", x)
            if via_cli:
                stage, res = _net_via_cli(model, work)
            else:
                stage, res = _net_via_api(model, work, x, out.details)
            out.stage = stage
            if isinstance(res, str):
                out.result, out.reason = "refused", res
            else:
                _classify(out, res)
    except CaseTimeout as e:
        out.result, out.stage, out.reason = "timeout", stage, str(e)
    except AbcnError as e:  # raised by our own code where the API path expects success
        out.result, out.stage, out.reason = "refused", stage, str(e)
    except Exception as e:  # noqa: BLE001
        if stage == "export":
            out.result, out.stage, out.reason = "export-failed", stage, _tail(e)  # Brevitas/torch, not us
        else:
            out.result, out.stage, out.reason = "traceback", stage, _tail(e)
            out.details["traceback"] = traceback.format_exc()[-4000:]
    out.seconds = round(time.time() - t0, 2)
    return out


def _net_via_api(model: str, work: Path, x: np.ndarray, details: dict):
    """(stage, result dict) or (stage, refusal message)."""
    from abcn_hw.backend import compile
    from abcn_hw.compiler import lower_file
    from abcn_hw.errors import AbcnError, UsageError
    from abcn_hw.sim import verify

    stage = "lower"
    low = work / "lowered.onnx"
    try:
        rep = lower_file(model, low, report=True, inputs=x)
    except AbcnError as e:
        _nothing_written(low, stage)
        return stage, str(e)
    again = work / "lowered2.onnx"
    lower_file(model, again, inputs=x)  # the same calibration inputs: rounded layers choose the same grids
    details["lower_deterministic"] = low.read_bytes() == again.read_bytes()
    stage = "compile"
    build = work / "build"
    try:
        compile(model, build, calibration=lambda: (x, "the case's inputs"))
    except AbcnError as e:
        _nothing_written(build, stage)
        return stage, str(e)
    stage = "verify"
    try:
        v = verify(model, build, x)
        details["verify_from"] = "export"
    except UsageError as e:
        if "not generated from this model" not in str(e):
            raise
        # two lowerings of one export differ (qonnx's random tensor names; issue 11 item 2): verify
        # the build made from the lowered file instead, as `abcn-hw compile lowered.onnx` would
        details["verify_from"] = "lowered (build-dir check failed on the export: " + reason_key(str(e)) + ")"
        shutil.rmtree(build)
        compile(low, build)
        v = verify(low, build, x)
    return stage, {"bit_exact": v.bit_exact, "mismatches": v.mismatches, "verify_ok": v.ok,
                   "first_mismatch_layer": v.first_mismatch_layer, "lowering_exact": rep.exact,
                   "output_equal": rep.output_equal, "agreement": rep.prediction_agreement,
                   "layers": [(l.name, l.op, l.exact, l.threshold) for l in rep.layers]}


def _nothing_written(path: Path, stage: str) -> None:
    if path.exists() or path.with_name(path.name + ".tmp").exists():
        raise AssertionError(f"{stage} refused the model but left {path} behind")


def _classify(out: Outcome, r: dict) -> None:
    out.details.update(r)
    if not r["bit_exact"]:
        out.result, out.reason = "wrong", f"csim differs from the lowered graph ({r['mismatches']} elements, " \
                                          f"first layer {r['first_mismatch_layer']})"
    elif r["lowering_exact"] and r["output_equal"] is not None and r["output_equal"] < 1.0:
        out.result, out.reason = "wrong", f"lowering reported exact but {100 * (1 - r['output_equal']):.2f}% of " \
                                          "outputs differ from the executed export"
    elif r["lowering_exact"]:
        out.result = "exact"
    elif r["agreement"] is not None and r["agreement"] < CONTRACT:
        out.result, out.reason = "below-contract", f"rounded lowering accepted at {100 * r['agreement']:.2f}% " \
                                                   "prediction agreement with the export (< 99.9 %)"
    else:
        out.result = "rounded"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abcn_hw.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=os.environ | {"PYTHONWARNINGS": "ignore"})


def _net_via_cli(model: str, work: Path):
    """The same through `abcn-hw` processes: exit code 0, or one error line and nothing written."""
    steps = [("lower", ["lower", model, "--out", "lowered.onnx", "--report", "--inputs", "x.npy", "--json"],
              work / "lowered.onnx"),
             ("compile", ["compile", "lowered.onnx", "--out", "build"], work / "build"),
             ("verify", ["verify", "lowered.onnx", "build", "--inputs", "x.npy", "--json"], None)]
    import json

    rep = {}
    for stage, args, target in steps:
        p = _cli(args, work)
        if p.returncode != 0 and stage != "verify":
            problem = check_error(stage, p.returncode, p.stderr, target)
            if problem:
                raise RuntimeError(f"abcn-hw {stage}: {problem}")
            return stage, p.stderr.strip()
        if stage == "lower":
            rep = json.loads(p.stdout)
    try:
        d = json.loads(p.stdout)
    except ValueError as e:
        raise RuntimeError(f"abcn-hw verify exit {p.returncode}: {p.stderr.strip()[-300:]}") from e
    return "verify", {"bit_exact": d["bit_exact"], "mismatches": d["mismatches"], "verify_ok": p.returncode == 0,
                      "first_mismatch_layer": d.get("first_mismatch_layer"), "lowering_exact": rep["exact"],
                      "output_equal": rep["output_equal"], "agreement": rep["prediction_agreement"]}


# -- hostile files --------------------------------------------------------------------------------------------

CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_error(cmd: str, rc: int, stderr: str, target: Path | None) -> str | None:
    """None when a refusal is well-formed, else what is wrong with it."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    if rc == 0:
        return "exit code 0"
    if "Traceback" in stderr:
        return "traceback: " + (lines[-1][:300] if lines else "")
    if not lines[0].startswith(f"abcn-hw {cmd}: error: "):
        return f"not an abcn-hw error line: {lines[0][:300]!r}"
    if len(lines) > 12 or any(not l.startswith("  ") for l in lines[1:]):  # grouped problems: indented details
        return f"{len(lines)} lines on stderr: {stderr.strip()[:300]!r}"
    if any(CTRL.search(l) for l in lines):
        return f"control characters in the error line: {lines[0][:300]!r}"
    if target is not None and (target.exists() or target.with_name(target.name + ".tmp").exists()):
        return f"wrote {target.name} although it failed"
    return None


def run_cli_in_process(argv: list[str]) -> tuple[int, str, str]:
    from abcn_hw.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@dataclass
class HostileContext:
    """A valid export, its lowered graph, a build dir compiled from it and inputs (for verify)."""
    work: Path
    export: Path
    lowered: Path
    build: Path
    x: Path

    @classmethod
    def make(cls, work: Path) -> "HostileContext":
        from abcn_hw.backend import compile
        from abcn_hw.compiler import lower_file

        work.mkdir(parents=True, exist_ok=True)
        spec = _nets.BASE_SPEC
        exp = Path(_nets.export(_nets.build(spec), spec, str(work / "base.onnx")))
        low = work / "base.lowered.onnx"
        lower_file(exp, low)
        compile(low, work / "base_build")
        np.save(work / "x.npy", _nets.inputs(spec, 8, 1))
        return cls(work, exp, low, work / "base_build", work / "x.npy")


COMMANDS = ("lower", "compile", "verify", "summary")


def run_hostile(name: str, path: Path, ctx: HostileContext, commands=COMMANDS, limit_s: int = 300) -> list[Outcome]:
    """Each command on the hostile file ``path``: refused cleanly or a failure outcome."""
    outs = []
    for cmd in commands:
        t0 = time.time()
        target = None
        if cmd == "lower":
            target = path.parent / "out.lowered.onnx"
            argv = ["lower", str(path), "--out", str(target)]
        elif cmd == "compile":
            target = path.parent / "out_build"
            argv = ["compile", str(path), "--out", str(target)]
        elif cmd == "verify":
            argv = ["verify", str(path), str(ctx.build), "--inputs", str(ctx.x)]
        else:
            argv = ["summary", str(path)]
        o = Outcome("hostile", f"{name} [{cmd}]", "?", stage=cmd)
        try:
            with time_limit(limit_s):
                rc, _, err = run_cli_in_process(argv)
                problem = check_error(cmd, rc, err, target)
                if problem is None:
                    o.result, o.reason = "refused", err.strip()
                elif rc == 0 and cmd == "compile":
                    _verify_accepted(o, path, target, ctx)
                elif rc == 0:
                    o.result, o.reason = "accepted", "accepted (exit 0)"
                else:
                    o.result, o.reason = "bad-error", problem
        except CaseTimeout as e:
            o.result, o.reason = "timeout", str(e)
        except BaseException as e:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from a library count too
            if isinstance(e, KeyboardInterrupt):
                raise
            o.result, o.reason = "traceback", _tail(e)
            o.details["traceback"] = traceback.format_exc()[-4000:]
        for t in (target,) if target else ():
            if t.is_dir():
                shutil.rmtree(t)
            elif t.exists():
                t.unlink()
        o.seconds = round(time.time() - t0, 2)
        outs.append(o)
    return outs


def _verify_accepted(o: Outcome, path: Path, build: Path, ctx: HostileContext) -> None:
    """A hostile file that compiled must then verify bit-exact against its own build."""
    import json

    rc, out, err = run_cli_in_process(["verify", str(path), str(build), "--inputs", str(ctx.x), "--json"])
    if rc != 0 and "not generated from this model" in err:
        # verify refuses a fresh build of the very same file: two lowerings differ (issue 11 item 2)
        o.result, o.reason = "accepted", "compiled; verify refused its own fresh build (lowering not deterministic)"
        o.details["verify_refused_own_build"] = True
        return
    if rc not in (0, 1) or not out.strip():
        problem = check_error("verify", rc, err, None)
        o.result, o.reason = ("refused", "compiled, then verify refused: " + err.strip()) if problem is None else \
            ("bad-error", "compiled, then verify: " + problem)
        return
    d = json.loads(out)
    low = d.get("lowered_vs_exported") or {}
    _classify(o, {"bit_exact": d["bit_exact"], "mismatches": d["mismatches"], "verify_ok": rc == 0,
                  "first_mismatch_layer": d.get("first_mismatch_layer"),
                  "lowering_exact": d.get("lowering_exact", True) is not False,
                  "output_equal": low.get("output_equal"), "agreement": d.get("prediction_agreement")})
    if o.result in ("exact", "rounded"):
        o.reason = f"accepted; compiled and verified {o.result}"
        o.result = "accepted"


# the corpus: each generator returns the bytes / proto of one hostile file (or writes extra files itself)

def _proto(p: Path) -> onnx.ModelProto:
    return onnx.load(str(p))


def _save(m: onnx.ModelProto | bytes, path: Path) -> Path:
    path.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
    return path


def _float_inits(m: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT and math.prod(t.dims) > 0]


def _set_init(t: TensorProto, a: np.ndarray) -> None:
    t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))


def _external(m: onnx.ModelProto, location: str, offset: int = 0, length: int | None = None) -> onnx.ModelProto:
    t = max(_float_inits(m), key=lambda t: math.prod(t.dims))
    n = math.prod(t.dims) * 4
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(n if length is None else length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return m


def _rename(m: onnx.ModelProto, fn) -> onnx.ModelProto:
    g = m.graph
    names: dict[str, str] = {}

    def r(x: str) -> str:
        if x and x not in names:
            names[x] = fn(x, len(names))
        return names.get(x, x)

    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = r(vi.name)
    for t in g.initializer:
        t.name = r(t.name)
    for i, n in enumerate(g.node):
        n.input[:] = [r(x) for x in n.input]
        n.output[:] = [r(x) for x in n.output]
        n.name = fn(n.name, 10_000 + i)
    return m


def _cycle(m: onnx.ModelProto) -> onnx.ModelProto:
    g = m.graph
    first = next(n for n in g.node if n.input and n.input[0] == g.input[0].name)
    last = g.node[len(g.node) - 1]
    first.input[0] = last.output[0]
    return m


def _drop_init(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    del m.graph.initializer[rng.randrange(len(m.graph.initializer))]
    return m


def _nan(m: onnx.ModelProto, rng: random.Random, value: float) -> onnx.ModelProto:
    t = rng.choice(_float_inits(m))
    a = numpy_helper.to_array(t).copy().reshape(-1)
    a[rng.randrange(a.size)] = value
    _set_init(t, a.reshape(tuple(t.dims)))
    return m


def _input_dim(m: onnx.ModelProto, idx: int, value: int) -> onnx.ModelProto:
    d = m.graph.input[0].type.tensor_type.shape.dim
    d[min(idx, len(d) - 1)].dim_value = value
    return m


def _huge_init(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    t = rng.choice(_float_inits(m))
    t.ClearField("raw_data")
    t.ClearField("float_data")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20, 64])
    return m


def _mismatched_init(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    t = rng.choice(_float_inits(m))
    t.dims[0] = t.dims[0] + 3
    return m


def _opset(m: onnx.ModelProto, version: int | None) -> onnx.ModelProto:
    keep = [o for o in m.opset_import if o.domain not in ("", "ai.onnx")]
    if version is not None:
        keep.append(helper.make_opsetid("", version))
    del m.opset_import[:]
    m.opset_import.extend(keep)
    return m


def _dup_output(m: onnx.ModelProto) -> onnx.ModelProto:
    g = m.graph
    g.node[len(g.node) // 2].output[0] = g.node[len(g.node) // 2 - 1].output[0]
    return m


def _dup_init(m: onnx.ModelProto) -> onnx.ModelProto:
    t = _float_inits(m)[0]
    dup = onnx.TensorProto()
    dup.CopyFrom(t)
    _set_init(dup, np.zeros(tuple(dup.dims), np.float32))
    m.graph.initializer.append(dup)
    return m


def _dup_node_names(m: onnx.ModelProto) -> onnx.ModelProto:
    for n in m.graph.node:
        n.name = "same"
    return m


def _shuffle(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    nodes = list(m.graph.node)
    rng.shuffle(nodes)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def _empty_graph(m: onnx.ModelProto) -> onnx.ModelProto:
    del m.graph.node[:]
    return m


def _no_inputs(m: onnx.ModelProto) -> onnx.ModelProto:
    del m.graph.input[:]
    return m


def _two_inputs(m: onnx.ModelProto) -> onnx.ModelProto:
    extra = onnx.ValueInfoProto()
    extra.CopyFrom(m.graph.input[0])
    extra.name = "second_input"
    m.graph.input.append(extra)
    return m


def _int_input(m: onnx.ModelProto) -> onnx.ModelProto:
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    return m


def _unknown_op(m: onnx.ModelProto, domain: str) -> onnx.ModelProto:
    n = m.graph.node[len(m.graph.node) // 2]
    n.op_type, n.domain = "NoSuchOp", domain
    if domain and domain not in [o.domain for o in m.opset_import]:
        m.opset_import.append(helper.make_opsetid(domain, 1))
    return m


def _append_to_output(m: onnx.ModelProto, make_node) -> onnx.ModelProto:
    """The graph output recomputed by ``make_node(input name, output name)`` from its old value."""
    last = m.graph.node[len(m.graph.node) - 1]
    out = last.output[0]
    last.output[0] = out + "_pre"
    m.graph.node.append(make_node(out + "_pre", out))
    return m


def _if_node(m: onnx.ModelProto) -> onnx.ModelProto:
    m.graph.initializer.append(numpy_helper.from_array(np.array(True), "if_cond"))

    def make(src: str, dst: str) -> onnx.NodeProto:
        branch = helper.make_graph([helper.make_node("Identity", [src], ["b_out"])], "branch", [],
                                   [helper.make_tensor_value_info("b_out", TensorProto.FLOAT, None)])
        return helper.make_node("If", ["if_cond"], [dst], name="if_node", then_branch=branch, else_branch=branch)

    return _append_to_output(m, make)


def _recursive_function(m: onnx.ModelProto) -> onnx.ModelProto:
    m.functions.append(helper.make_function("evil.domain", "Loop1", ["x"], ["y"],
                                            [helper.make_node("Loop1", ["x"], ["y"], domain="evil.domain")],
                                            [helper.make_opsetid("", 18), helper.make_opsetid("evil.domain", 1)]))
    m.opset_import.append(helper.make_opsetid("evil.domain", 1))
    return _append_to_output(m, lambda src, dst: helper.make_node("Loop1", [src], [dst], name="recursive",
                                                                  domain="evil.domain"))


def _attr_mutation(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    nodes = [n for n in m.graph.node if any(a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS,
                                                       onnx.AttributeProto.FLOAT) for a in n.attribute)]
    if not nodes:
        return m
    n = rng.choice(nodes)
    a = rng.choice([a for a in n.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS,
                                                         onnx.AttributeProto.FLOAT)])
    bad = rng.choice([0, -1, 2, 7, 1 << 31, -(1 << 40)])
    if a.type == onnx.AttributeProto.INT:
        a.i = bad
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf")])
    elif len(a.ints):
        a.ints[rng.randrange(len(a.ints))] = bad
    return m


def _init_value_mutation(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    t = rng.choice(list(m.graph.initializer))
    a = numpy_helper.to_array(t).copy()
    if a.size == 0:
        return m
    flat = a.reshape(-1)
    i = rng.randrange(flat.size)
    if a.dtype.kind == "f":
        flat[i] = rng.choice([0.0, -flat[i], 1e30, -1e-30, 3.0, 0.5])
    elif a.dtype.kind in "iu":
        flat[i] = rng.choice([0, -1, 1 << 20, 5]) if a.dtype.kind == "i" else rng.choice([0, 1, 200])
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    return m


def _init_shape_mutation(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    t = rng.choice([t for t in m.graph.initializer if math.prod(t.dims) > 1] or list(m.graph.initializer))
    a = numpy_helper.to_array(t)
    shapes = [(a.size,), (1, a.size), (a.size, 1, 1, 1), ()]
    shape = rng.choice([s for s in shapes if math.prod(s) == a.size] or [(a.size,)])
    t.CopyFrom(numpy_helper.from_array(a.reshape(shape), t.name))
    return m


def _rewire(m: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    """An input of a random node replaced by a random earlier tensor (acyclic, maybe ill-typed)."""
    g = m.graph
    i = rng.randrange(1, len(g.node))
    earlier = [g.input[0].name] + [o for n in list(g.node)[:i] for o in n.output]
    n = g.node[i]
    if n.input:
        n.input[rng.randrange(len(n.input))] = rng.choice(earlier)
    return m


def _flip_bytes(data: bytes, rng: random.Random, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def fixed_corpus(ctx: HostileContext, out: Path) -> list[tuple[str, Path]]:
    """The named hostile files (each in its own folder under ``out``), built from ctx's models."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    exp_bytes = ctx.export.read_bytes()
    cases: list[tuple[str, Path]] = []

    def add(name: str, make, base: Path | None = None) -> None:
        d = out / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        d.mkdir(exist_ok=True)
        p = d / "model.onnx"
        data = make(_proto(base or ctx.export)) if base is not False else make(None)
        if data is not None:
            _save(data, p)
        cases.append((name, p))

    add("empty file", lambda _: b"", False)
    add("random bytes", lambda _: bytes(random.Random(1).randrange(256) for _ in range(4096)), False)
    add("text file", lambda _: b"this is not an onnx model\n", False)
    for frac in (0.1, 0.5, 0.9, 0.999):
        add(f"truncated at {frac:.1%}", lambda _, f=frac: exp_bytes[:int(len(exp_bytes) * f)], False)
    add("a TensorProto, not a model", lambda _: numpy_helper.from_array(np.ones(4, np.float32), "t").SerializeToString(),
        False)
    add("missing file", lambda _: None, False)
    add("a folder, not a file", lambda _: None, False)
    (out / "a_folder__not_a_file" / "model.onnx").mkdir(exist_ok=True)
    for base_name, base in (("export", ctx.export), ("lowered", ctx.lowered)):
        b = lambda name: f"{base_name}: {name}"  # noqa: E731
        add(b("missing initializer"), lambda m: _drop_init(m, rng), base)
        add(b("cyclic graph"), _cycle, base)
        add(b("self loop"), lambda m: (m.graph.node[0].input.__setitem__(0, m.graph.node[0].output[0]), m)[1], base)
        add(b("no standard opset"), lambda m: _opset(m, None), base)
        add(b("opset 1"), lambda m: _opset(m, 1), base)
        add(b("opset 999"), lambda m: _opset(m, 999), base)
        add(b("no opset_import at all"), lambda m: (m.ClearField("opset_import"), m)[1], base)
        add(b("ir_version 0"), lambda m: (setattr(m, "ir_version", 0), m)[1], base)
        add(b("ir_version 99"), lambda m: (setattr(m, "ir_version", 99), m)[1], base)
        add(b("zero input dim"), lambda m: _input_dim(m, 2, 0), base)
        add(b("zero batch dim"), lambda m: _input_dim(m, 0, 0), base)
        add(b("huge input dim"), lambda m: _input_dim(m, 2, 1 << 40), base)
        add(b("negative input dim"), lambda m: _input_dim(m, 3, -5), base)
        add(b("rank-0 input"), lambda m: (m.graph.input[0].type.tensor_type.shape.ClearField("dim"), m)[1], base)
        add(b("int64 input"), _int_input, base)
        add(b("huge initializer dims without data"), lambda m: _huge_init(m, rng), base)
        add(b("initializer data does not match dims"), lambda m: _mismatched_init(m, rng), base)
        add(b("NaN weight"), lambda m: _nan(m, rng, float("nan")), base)
        add(b("Inf constant"), lambda m: _nan(m, rng, float("inf")), base)
        add(b("-Inf constant"), lambda m: _nan(m, rng, float("-inf")), base)
        add(b("external data: absolute path"), lambda m: _external(m, "/etc/passwd"), base)
        add(b("external data: ../ outside the folder"), lambda m: _external(m, "../canary.bin"), base)
        add(b("external data: link to outside"), lambda m: _external(m, "link.bin"), base)
        add(b("external data: FIFO in the folder"), lambda m: _external(m, "fifo.bin"), base)
        add(b("external data: missing file"), lambda m: _external(m, "nope.bin"), base)
        add(b("external data: range past the end"), lambda m: _external(m, "small.bin", offset=2, length=1 << 20), base)
        add(b("control characters in names"),
            lambda m: _rename(m, lambda x, i: f"\x1b[31m{i}\r\x07\x00\n{x}"), base)
        add(b("path separators in names"), lambda m: _rename(m, lambda x, i: f"../../etc/{i}/..\\x{x}"), base)
        add(b("10k-character names"), lambda m: _rename(m, lambda x, i: f"n{i}" + "A" * 10_000), base)
        add(b("empty graph"), _empty_graph, base)
        add(b("no graph inputs"), _no_inputs, base)
        add(b("two graph inputs"), _two_inputs, base)
        add(b("no graph outputs"), lambda m: (m.graph.ClearField("output"), m)[1], base)
        add(b("duplicate tensor names"), _dup_output, base)
        add(b("duplicate initializer names"), _dup_init, base)
        add(b("duplicate node names"), _dup_node_names, base)
        add(b("nodes out of order"), lambda m: _shuffle(m, random.Random(3)), base)
        add(b("unknown standard op"), lambda m: _unknown_op(m, ""), base)
        add(b("unknown custom-domain op"), lambda m: _unknown_op(m, "evil.domain"), base)
        add(b("If subgraph"), _if_node, base)
        add(b("recursive model-local function"), _recursive_function, base)
    add("export: Transpose perm with a repeated axis", _repeated_perm)
    add("export: conv stride 0", lambda m: _zero_strides(m, "Conv"))  # found by the campaign: ZeroDivisionError
    add("export: max-pool stride 0", lambda m: _zero_strides(m, "MaxPool"))
    add("export: op type not valid UTF-8", lambda m: _bad_utf8(m, exp_bytes), False)
    add("export: weight scale of a transposed shape", _transposed_scale)
    add("lowered: weight padding bit set", _weight_padding_bit, ctx.lowered)
    add("lowered: threshold direction 0", _zero_direction, ctx.lowered)
    add("lowered: accumulator overflows int32", _huge_coefficient, ctx.lowered)
    add("lowered: max-pool stride changed", _pool_stride, ctx.lowered)
    add("lowered: function body changed", _negated_function, ctx.lowered)
    _external_files(out, cases)
    return cases


def _zero_strides(m: onnx.ModelProto, op_type: str) -> onnx.ModelProto:
    node = next(n for n in m.graph.node if n.op_type == op_type)
    for a in list(node.attribute):
        if a.name == "strides":
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute("strides", [0, 0]))
    return m


def _repeated_perm(m: onnx.ModelProto) -> onnx.ModelProto:
    node = next(n for n in m.graph.node if n.op_type == "Transpose")
    a = next(a for a in node.attribute if a.name == "perm")
    a.ints[:] = [0] * len(a.ints)
    return m


def _transposed_scale(m: onnx.ModelProto) -> onnx.ModelProto:
    """The per-channel scale (O, 1) of a BipolarQuant weight (O, K) given as (1, O): does not broadcast."""
    init = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        t = init.get(n.input[1]) if n.op_type == "BipolarQuant" and len(n.input) > 1 else None
        if t is not None and len(t.dims) == 2 and t.dims[1] == 1 and t.dims[0] > 1:
            a = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(a.reshape(a.shape[::-1]), t.name))
            return m
    raise AssertionError("no per-channel BipolarQuant scale in the base model")


def _bad_utf8(_, data: bytes) -> bytes:
    return data.replace(b"BipolarQuant", b"Bipolar\xeauant", 1)


def _weight_padding_bit(m: onnx.ModelProto) -> onnx.ModelProto:
    """The first packed weight gets a 1 in its zero padding (bits beyond K)."""
    node = next(n for n in m.graph.node if n.op_type.startswith("XnorPopcount"))
    t = next(t for t in m.graph.initializer if t.name == node.input[1])
    w = numpy_helper.to_array(t).copy()
    w[..., -1] |= 1
    t.CopyFrom(numpy_helper.from_array(w, t.name))
    return m


def _zero_direction(m: onnx.ModelProto) -> onnx.ModelProto:
    node = next(n for n in m.graph.node if n.op_type == "MultiBaseThreshold")
    t = next(t for t in m.graph.initializer if t.name == node.input[3])
    s = numpy_helper.to_array(t).copy()
    s[0] = 0
    t.CopyFrom(numpy_helper.from_array(s, t.name))
    return m


def _huge_coefficient(m: onnx.ModelProto) -> onnx.ModelProto:
    """The final layer's first int32 scale coefficient set to 2**30: the graph's int32 accumulator
    wraps around, a hardware accumulator sized from the coefficients would not."""
    node = next(n for n in m.graph.node if n.op_type == "MultiBaseAccumulate")
    t = next(t for t in m.graph.initializer if t.name == node.input[1])
    c = numpy_helper.to_array(t).copy()
    c.flat[0] = 1 << 30
    t.CopyFrom(numpy_helper.from_array(c, t.name))
    return m


def _negated_function(m: onnx.ModelProto) -> onnx.ModelProto:
    """The model-local function of MultiBaseAccumulate ends in a Neg: onnxruntime runs the graph
    (its final accumulators negated), a kernel implementing the op's definition would not (found by
    the fuzz campaign as a random bit flip inside a function body: compile accepted it, csim differed)."""
    f = next(f for f in m.functions if f.name == "MultiBaseAccumulate")
    last = f.node[-1]
    last.output[0] = "Y_before_neg"
    f.node.append(helper.make_node("Neg", ["Y_before_neg"], ["Y"]))
    return m


def _pool_stride(m: onnx.ModelProto) -> onnx.ModelProto:
    node = next(n for n in m.graph.node if n.op_type == "BitMaxPool")
    a = next(a for a in node.attribute if a.name == "strides")
    a.ints[-1] = 7
    return m


def _external_files(out: Path, cases: list[tuple[str, Path]]) -> None:
    """Files the external-data cases point at (a canary outside the case folders, a link, a FIFO)."""
    canary = out / "canary.bin"
    canary.write_bytes(b"CANARY" * 1000)
    for name, p in cases:
        if "link to outside" in name:
            link = p.parent / "link.bin"
            if not link.is_symlink():
                link.symlink_to(canary)
        if "FIFO" in name:
            fifo = p.parent / "fifo.bin"
            if not fifo.exists():
                os.mkfifo(fifo)
        if "range past the end" in name:
            (p.parent / "small.bin").write_bytes(b"\0" * 16)
        if "../ outside" in name:
            shutil.copy(canary, p.parent.parent / "canary.bin") if not (p.parent.parent / "canary.bin").exists() else None


RANDOM_MUTATIONS = {
    "bit flips": lambda data, m, rng: _flip_bytes(data, rng, rng.choice([1, 4, 32])),
    "attribute value": lambda data, m, rng: _attr_mutation(m, rng),
    "initializer value": lambda data, m, rng: _init_value_mutation(m, rng),
    "initializer shape": lambda data, m, rng: _init_shape_mutation(m, rng),
    "rewired input": lambda data, m, rng: _rewire(m, rng),
    "dropped initializer": lambda data, m, rng: _drop_init(m, rng),
    "truncated": lambda data, m, rng: data[:rng.randrange(len(data))],
}


def random_case(ctx: HostileContext, out: Path, i: int, rng: random.Random) -> tuple[str, Path]:
    """One randomly mutated copy of the export or the lowered graph."""
    kind = rng.choice(sorted(RANDOM_MUTATIONS))
    base = rng.choice([ctx.export, ctx.lowered])
    d = out / f"random_{i:05d}"
    d.mkdir(parents=True, exist_ok=True)
    data = base.read_bytes()
    res = RANDOM_MUTATIONS[kind](data, _proto(base), rng)
    p = _save(res, d / "model.onnx")
    return f"random {kind} of the {'export' if base == ctx.export else 'lowered graph'} #{i}", p


def summarise(outcomes: list[Outcome]) -> dict:
    """Counts per kind and result; refusals grouped by reason; every failure listed."""
    summary: dict = {}
    for kind in ("net", "hostile"):
        outs = [o for o in outcomes if o.kind == kind]
        counts: dict[str, int] = {}
        for o in outs:
            counts[o.result] = counts.get(o.result, 0) + 1
        reasons: dict[str, int] = {}
        for o in outs:
            if o.result == "refused":
                key = f"{o.stage}: {reason_key(o.reason)}"
                reasons[key] = reasons.get(key, 0) + 1
        known = {"verify_refused_own_build": sum(bool(o.details.get("verify_refused_own_build")) or
                                                 str(o.details.get("verify_from", "")).startswith("lowered") for o in outs),
                 "lowering_not_deterministic": sum(o.details.get("lower_deterministic") is False for o in outs)}
        summary[kind] = {"cases": len(outs), "results": dict(sorted(counts.items())), "known_issues": known,
                         "failed": sum(o.failed for o in outs),
                         "refused_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                         "failures": [o.to_dict() for o in outs if o.failed]}
    return summary


__all__ = ["Outcome", "run_net_case", "HostileContext", "fixed_corpus", "random_case", "run_hostile", "summarise",
           "check_error", "reason_key"]
