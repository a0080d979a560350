"""``compile``: model -> self-contained HLS project directory.

Layout of BUILD_DIR (all paths fixed; nothing derived from model names except the sanitised,
numbered layer ids ``L<i>_<hint>``):

  README.md                what is here, how to build and simulate
  Makefile                 g++ C simulation (AP_TYPES overridable: make AP_TYPES=/path/to/ap_types)
  hls.tcl                  Vitis HLS: csim, csynth, cosim, export (vitis_hls -f hls.tcl)
  folding.json             PE/SIMD per layer and stream FIFO depths (usable as --folding)
  report.json              layers, folding, cycle / FPS / latency / LUT / BRAM estimates, lowering report
  include/abcn/*.hpp       the kernel library (copied from hls/include/abcn)
  include/csim_tap.hpp     backend glue: per-layer dumps in C simulation
  include/abcn_backend.hpp backend glue: threshold units for non-factoring coefficients
  src/config.hpp           stream types and sizes;  src/params_<id>.hpp  weights and thresholds
  src/top.hpp, src/top.cpp the dataflow top function ``abcn_top``
  tb/csim_driver.cpp       batch C-simulation driver (files in, files out, iteration counts; with
                           -DABCN_CSIM_LIB -shared the library abcn-hw csim loads)
  tb/csim_host.cpp         the host steps (pre.onnx, packing, unpacking, post.onnx) in C++ for that
                           library (abcn_hw/backend/host_native.py; absent when a host graph uses
                           an op it does not translate: io.json's host_native says why)
  include/abcn_host.hpp    backend glue: the library's batch loop around tb/csim_host.cpp
  host/io.json             stream layouts for the host (input packing, output unpacking, dumps)
  host/pre.onnx            host pre-processing (input quantisation) of the lowered graph
  host/post.onnx           host post-processing (accumulator -> float32 logits) of the lowered graph
  host/lowered.onnx        the lowered graph the project was generated from
  data/sample_in.bin       one input image (zeros) for the Tcl csim/cosim runs
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import OutputPathError, UsageError
from . import emit, host_native
from .folding import DEFAULT_CLOCK_MHZ, Estimate, auto_folding, build_graph, default_folding, estimate, read_folding
from .io import io_spec, pack_input, run_pre
from .canonical import canonicalize
from .frontend import build_network, is_lowered
from .graph import HwGraph, stream_names
from .ir import Network

GENERATOR = "abcn-hw backend 1"
#: the kernel library: a link to the repository's hls/include/abcn, installed as package data
KERNEL_DIR = Path(__file__).resolve().parent / "hls_include"
CXXFLAGS = ["-std=c++14", "-O2", "-Wall", "-Werror", "-pthread"]
DEFAULT_PART = "xc7z020clg400-1"
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+\-]+")


def ap_types_dir() -> Path:
    """The Xilinx open-source ap_types headers shipped by the installed hls4ml wheel."""
    try:
        import hls4ml
    except Exception as e:  # noqa: BLE001
        raise UsageError("the hls4ml package (which ships the ap_types headers) is not installed",
                         fix="pip install hls4ml") from e
    p = Path(hls4ml.__file__).resolve().parent / "templates" / "vivado" / "ap_types"
    if not (p / "ap_int.h").is_file():
        raise UsageError("hls4ml does not ship the ap_types headers", str(p))
    return p


@dataclass
class CompileResult:
    build_dir: Path
    network: Network
    estimate: Estimate
    folding: dict
    files: list[str] = field(default_factory=list)
    lowering_report: object = None

    def table(self) -> str:
        return self.estimate.table()


def _load(model, where: str | None, calibration=None, min_agreement: float | None = None,
          max_acc_bits: int | None = None) -> tuple[onnx.ModelProto, object]:
    """(lowered proto, lowering report or None) from a path / ModelProto / ModelWrapper; an export
    is lowered under the rounding contract (abcn_hw.compiler.contract)."""
    from qonnx.core.modelwrapper import ModelWrapper

    if isinstance(model, ModelWrapper):
        proto = model.model
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        from ..compiler.modelfile import read_model

        proto = read_model(model, where)
    if is_lowered(proto):
        return canonicalize(proto), None
    from ..compiler.contract import DEFAULT_MIN_AGREEMENT, MAX_ACC_BITS, default_calibration, lower_to_contract

    lowered, rep = lower_to_contract(proto, calibration or default_calibration(proto),
                                     DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement,
                                     MAX_ACC_BITS if max_acc_bits is None else max_acc_bits, where=where)
    return canonicalize(lowered.model), rep


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError("the build dir exists and is not a directory", str(out_dir), "choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise OutputPathError("the build dir exists and is not empty", str(out_dir),
                              "choose a new --out or pass --force to overwrite it")


def compile(model, out_dir, folding=None, target_fps: float | None = None, clock_mhz: float = DEFAULT_CLOCK_MHZ,
            force: bool = False, part: str = DEFAULT_PART, calibration=None, min_agreement: float | None = None,
            max_acc_bits: int | None = None) -> CompileResult:
    """Generate the HLS project for ``model`` (an exported QONNX file, which is lowered first, or an
    already lowered graph; path, ModelProto or ModelWrapper) in ``out_dir``.

    folding: path to a JSON file or dict ``{layer id or node name: {"PE": p, "SIMD": s}}``;
    target_fps: choose the cheapest folding reaching this rate at ``clock_mhz`` (exclusive with
    folding); neither: the rate of a throughput-oriented default (PE <= 16, SIMD <= 64) reached at
    the cheapest folding of every layer (the slowest layer sets the rate; the others are balanced to it).
    calibration / min_agreement / max_acc_bits: the rounding contract of an export with non-dyadic
    scales (abcn_hw.compiler.contract.lower_to_contract; default calibration: bundled MNIST test
    images for MNIST-shaped models).
    Raises UsageError, OutputPathError, UnsupportedModelError, ContractError (nothing is written then)."""
    out_dir = Path(out_dir)
    where = str(model) if isinstance(model, (str, os.PathLike)) else None
    if folding is not None and target_fps is not None:
        raise UsageError("--folding and --target-fps are exclusive", fix="pass one of them")
    try:
        clock_mhz = float(clock_mhz)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--clock-mhz must be a number, got {clock_mhz!r}") from e
    if not (0 < clock_mhz <= 2000):
        raise UsageError(f"--clock-mhz must be in (0, 2000], got {clock_mhz}")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", part or ""):
        raise UsageError(f"invalid FPGA part name {part!r}")
    check_out_dir(out_dir, force)
    ap = ap_types_dir()
    if not _SAFE_PATH.fullmatch(str(ap)):
        raise UsageError("the ap_types path contains characters the Makefile cannot hold", str(ap),
                         "install hls4ml under a plain path")

    proto, low_rep = _load(model, where, calibration, min_agreement, max_acc_bits)
    net = build_network(proto, source=where, where=where)
    met = None
    if target_fps is not None:
        fold, met = auto_folding(net, float(target_fps), clock_mhz)
    elif folding is not None:
        fold = read_folding(net, folding)
    else:
        # balanced default: the rate the throughput-oriented default folding reaches (its slowest
        # layer), at the cheapest folding of every other layer that keeps up with it
        ii = estimate(net, build_graph(net, default_folding(net), fifos=False), clock_mhz).ii  # II only
        fold, _ = auto_folding(net, clock_mhz * 1e6 / ii, clock_mhz)
    graph = build_graph(net, fold)
    fold = {layer.ident: (layer.pe, layer.simd) for layer in net.matrix_layers}  # as built (joins share a PE)
    apply_fifo_depths(graph, folding)
    est = estimate(net, graph, clock_mhz, float(target_fps) if target_fps is not None else None, met)

    files = generate(net, graph, est, proto, low_rep, ap, clock_mhz, part)
    _write(out_dir, files, force)
    return CompileResult(out_dir, net, est, {k: {"PE": v[0], "SIMD": v[1]} for k, v in fold.items()},
                         sorted(files), low_rep)


def apply_fifo_depths(graph: HwGraph, folding) -> None:
    """Stream depths a folding file gives under ``"fifos"`` (as folding.json writes them) replace the
    token simulation's (passes.fifo_sizing); a depth below it is simulated, and one that deadlocks
    the pipeline is refused, naming the full and empty streams."""

    from .passes.fifo_sizing import simulate, token_graph

    given = folding.get("fifos") if isinstance(folding, dict) else None
    if given is None and folding is not None and not isinstance(folding, dict):
        try:
            with open(folding, encoding="utf-8") as f:
                spec = json.load(f)
            given = spec.get("fifos") if isinstance(spec, dict) else None
        except (OSError, ValueError):  # read_folding has already refused an unreadable file
            given = None
    if given is None:
        return
    if not isinstance(given, list):
        raise UsageError("\"fifos\" in the folding must be a list of {\"stream\": name, \"depth\": words}")
    names = stream_names(graph)
    edges = {names[id(e)]: e for e in graph.internal_edges}
    user = {}
    for entry in given:
        name, d = (entry.get("stream"), entry.get("depth")) if isinstance(entry, dict) else (None, None)
        if name not in edges or not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 1 << 24:
            raise UsageError(f"bad \"fifos\" entry in the folding: {json.dumps(entry)[:80]}",
                             fix="give {\"stream\": one of " + ", ".join(edges) + ", \"depth\": 1..16777216}")
        user[name] = d
    if any(d < edges[k].depth for k, d in user.items()):  # below the sizing: simulate the bounded pipeline
        sim = simulate(token_graph(graph), {**{k: e.depth for k, e in edges.items()}, **user}, images=2)
        if sim.deadlock:
            raise UsageError("the stream depths of the folding deadlock the pipeline: "
                             + sim.message()[len("deadlock: "):],
                             fix="raise those depths, or drop \"fifos\" to size every stream by the token simulation")
    sizing = graph.fifo_sizing
    for k, d in user.items():  # the project and the report get the FIFOs built
        edges[k].depth = d
        if sizing is not None:
            sizing.edges[k].depth = d


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode()


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def generate(net: Network, graph: HwGraph, est: Estimate, proto: onnx.ModelProto, low_rep, ap: Path, clock_mhz: float,
             part: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if not (KERNEL_DIR / "abcn.hpp").is_file():
        from ..errors import AbcnError

        raise AbcnError("the HLS kernel library is missing from the installed package", str(KERNEL_DIR),
                        "reinstall abcn-hw (pip install .); in a git checkout, abcn_hw/backend/hls_include must be "
                        "the symbolic link to hls/include/abcn (git config core.symlinks true)")
    for hpp in sorted(KERNEL_DIR.glob("*.hpp")):
        files[f"include/abcn/{hpp.name}"] = hpp.read_bytes()
    files["include/csim_tap.hpp"] = emit.CSIM_TAP_HPP.encode()
    files["include/abcn_backend.hpp"] = (Path(__file__).parent / "templates" / "abcn_backend.hpp").read_bytes()
    files["include/abcn_host.hpp"] = (Path(__file__).parent / "templates" / "abcn_host.hpp").read_bytes()
    files["src/config.hpp"] = emit.config_header(net, graph).encode()
    for k in graph.topo_order():
        files.update({path: text.encode() for path, text in k.param_files().items()})
    files["src/top.hpp"] = emit.top_header().encode()
    files["src/top.cpp"] = emit.top_source(net, graph).encode()
    files["tb/csim_driver.cpp"] = emit.driver_source(net, graph).encode()
    files["host/pre.onnx"] = net.pre_model
    files["host/post.onnx"] = net.post_model
    files["host/lowered.onnx"] = proto.SerializeToString(deterministic=True)
    io = io_spec(net, graph)
    host_cpp, io["host_native"] = host_native.generate(net.pre_model, net.post_model, io)
    if host_cpp is not None:
        files["tb/csim_host.cpp"] = host_cpp.encode()
    files["host/io.json"] = _json(io)
    files["data/sample_in.bin"] = _sample_input(net, io)
    names = stream_names(graph)
    folding = {"layers": [{"id": l.ident, "node": l.node, "PE": l.pe, "SIMD": l.simd} for l in net.matrix_layers],
               "fifos": [{"stream": names[id(e)], "depth": e.depth} for e in graph.internal_edges]}
    files["folding.json"] = _json(folding)
    report = {"generator": GENERATOR, "source": net.source, "network": net.name, "top": emit.TOP,
              "part": part, "estimate": est.to_dict(),
              "lowering": _lowering_dict(low_rep, net.source),
              "rounding_contract": _contract(proto),
              "limits": "abcn_hw/backend/limits.py"}
    files["report.json"] = _json(report)
    files["Makefile"] = makefile(ap).encode()
    files["hls.tcl"] = tcl(clock_mhz, part).encode()
    files["README.md"] = readme(net, est, _contract(proto), low_rep).encode()
    return files


def _lowering_dict(low_rep, source: str) -> dict | None:
    """The lowering report for report.json; its source is the model's file name, as in "source", so
    the build dir does not depend on where the model or the build was (reproducible builds)."""
    if low_rep is None:
        return None
    return low_rep.to_dict() | {"source": source or None}


def _sample_input(net: Network, io: dict) -> bytes:
    """One all-zeros float input image, quantised by the host graph and packed (for hls.tcl)."""
    x = np.zeros((1,) + tuple(net.input_shape), np.float32)
    acc_in = run_pre(net.pre_model, io, x)
    return pack_input(io, acc_in)


def _write(out_dir: Path, files: dict[str, bytes], force: bool) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if force:
            for sub in ("include", "src", "tb", "host", "data", "build"):
                p = out_dir / sub
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
        root = out_dir.resolve()
        for rel in sorted(files):
            path = (out_dir / rel)
            if not str(path.resolve()).startswith(str(root) + os.sep):  # defence in depth: fixed names only
                raise OutputPathError("refusing to write outside the build dir", rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[rel])
    except OSError as e:
        raise OutputPathError(f"cannot write the build dir: {e.strerror}", str(out_dir),
                              "choose a writable --out") from e


def makefile(ap: Path) -> str:
    lines = [
        "# Generated by abcn-hw compile. C simulation with g++:",
        "#   make            build build/csim_driver",
        "#   make run        simulate data/sample_in.bin (one zero image)",
        "#   make AP_TYPES=/path/to/ap_types   use another copy of the Xilinx ap_types headers",
        "# The Python side (abcn-hw csim / verify) builds with the same flags into .csim/<hash>/.",
        f"AP_TYPES ?= {ap}",
        "CXX ?= g++",
        f"CXXFLAGS ?= {' '.join(CXXFLAGS)}",
        "INCLUDES := -Iinclude -Isrc -I$(AP_TYPES)",
        "SOURCES := src/top.cpp tb/csim_driver.cpp",
        "HEADERS := $(wildcard src/*.hpp include/*.hpp include/abcn/*.hpp)",
        "",
        ".PHONY: all run dump clean",
        "all: build/csim_driver",
        "",
        "build/csim_driver: $(SOURCES) $(HEADERS)",
        "\tmkdir -p build",
        "\t$(CXX) $(CXXFLAGS) $(INCLUDES) $(SOURCES) -o $@",
        "",
        "build/csim_driver_dump: $(SOURCES) $(HEADERS)",
        "\tmkdir -p build",
        "\t$(CXX) $(CXXFLAGS) -DABCN_CSIM_DUMP $(INCLUDES) $(SOURCES) -o $@",
        "",
        "run: build/csim_driver",
        "\t./build/csim_driver data/sample_in.bin build/sample_out.bin build/sample_counts.txt",
        "",
        "dump: build/csim_driver_dump",
        "\t./build/csim_driver_dump data/sample_in.bin build/sample_out.bin build/sample_counts.txt 1 build",
        "",
        "clean:",
        "\trm -rf build",
        "",
    ]
    return "\n".join(lines)


def tcl(clock_mhz: float, part: str) -> str:
    period = f"{1000.0 / clock_mhz:.4f}"
    flags = "-std=c++14 -DABCN_NO_COUNTERS -I$here/include -I$here/src"
    lines = [
        "# Generated by abcn-hw compile. Vitis HLS: vitis_hls -f hls.tcl",
        "# Runs C simulation, synthesis, C/RTL co-simulation (one sample image) and exports an IP.",
        "set here [file normalize [file dirname [info script]]]",
        "open_project -reset abcn_hls",
        "set_top abcn_top",
        f'add_files "$here/src/top.cpp" -cflags "{flags}"',
        f'add_files -tb "$here/tb/csim_driver.cpp" -cflags "{flags}"',
        "open_solution -reset solution1 -flow_target vivado",
        f"set_part {{{part}}}",
        f"create_clock -period {period} -name default",
        'set args [list "$here/data/sample_in.bin" "$here/data/hls_out.bin" "$here/data/hls_counts.txt" 1]',
        "csim_design -argv $args",
        "csynth_design",
        "cosim_design -argv $args",
        "export_design -format ip_catalog",
        "exit",
        "",
    ]
    return "\n".join(lines)


def _contract(proto: onnx.ModelProto) -> dict | None:
    """The rounding contract and coefficient grids the lowering recorded (None: exact lowering)."""
    from ..compiler.pipeline import grid_metadata

    return grid_metadata(proto)


def _contract_lines(contract: dict | None, low_rep) -> list[str]:
    if contract is None:
        return []
    bits = contract.get("bits", {})
    lines = ["## Rounding contract", "",
             f"The lowering is not exact in every layer; its contract: prediction agreement with the executed export",
             f">= {100 * float(contract.get('min_agreement', 0)):g}% (`abcn-hw verify` checks it on its inputs)."]
    if bits:
        lines.append("Coefficient grids of the layers with non-dyadic scales (|c| <= 2^bits, accumulators <= "
                     f"{contract.get('max_acc_bits')} bits): " + ", ".join(f"`{_md_safe(k)}` {v} bits" for k, v in bits.items()) + ".")
    if low_rep is not None and low_rep.calibration_agreement is not None:
        lines.append(f"Chosen on {low_rep.calibration}: {100 * low_rep.calibration_agreement:.3f}% agreement.")
    return lines + [""]


def readme(net: Network, est: Estimate, contract: dict | None = None, low_rep=None) -> str:
    return "\n".join([
        f"# abcn-hw HLS project: {net.name}",
        "",
        "Generated by `abcn-hw compile` from " + (f"`{_md_safe(net.source)}`" if net.source else "a model") + ".",
        "Top function `abcn_top(in, out, images)` in `src/top.cpp`: a DATAFLOW pipeline of the abcn kernel",
        "library (`include/abcn/`), AXI-stream input/output, `images` over AXI-lite.",
        "",
        "* C simulation (a whole batch at once): `abcn-hw csim BUILD_DIR --inputs X.npy --out Y.npy`",
        "* bit-exactness against the lowered graph: `abcn-hw verify MODEL.onnx BUILD_DIR --inputs X.npy`",
        "* plain g++: `make` (override the ap_types headers with `make AP_TYPES=...`), `make run`",
        "* Vitis HLS (csim, csynth, cosim, export): `vitis_hls -f hls.tcl`",
        "",
        "The host quantises the float input with `host/pre.onnx` and turns the final integer accumulators",
        "into float32 logits with `host/post.onnx` (both cut from the lowered graph, so the float ops are",
        "exactly the lowered graph's). Stream layouts: `host/io.json`. Folding: `folding.json`.",
        "`abcn-hw csim`/`verify` run those host steps in C++ (`tb/csim_host.cpp`, generated from the same",
        "constants and tested equal to the graphs) inside the C-simulation library, where io.json's `host_native`",
        "says it is supported.",
        "",
        "## Folding and estimates",
        "",
        "```",
        est.table(),
        "```",
        "",
        "Cycle counts are per image at II=1 (checked by `abcn-hw csim`/`verify` against the iteration counters",
        "the simulated kernels advance as they move stream words); LUT/BRAM from the FINN-R analytical model (Blott et al., ACM TRETS 2018),",
        "see `report.json` and abcn_hw/backend/folding.py.",
        "",
    ] + _contract_lines(contract, low_rep))


def _md_safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", s)[:80]
