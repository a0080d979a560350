"""CLI commands of the backend: ``abcn-hw compile``, ``abcn-hw csim``, ``abcn-hw verify``.

Registered with :func:`abcn_hw.cli.command` when this module is imported (abcn_hw/cli.py imports
it). The plain functions :func:`compile_model`, :func:`run_csim` and :func:`verify_model` do the
work and return exit codes / result objects, so they can also be called from Python.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..cli import CONTRACT_ARGS, arg, command, contract_options
from ..errors import DataError, OutputPathError
from .names import file_stems


def _load_inputs(path: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the inputs: {e}", path, "pass a .npy file of float32 images") from e
    if not isinstance(x, np.ndarray):
        raise DataError("the inputs file must hold a single array", path)
    return x


def compile_model(model: str, out: str, folding: str | None = None, target_fps: float | None = None,
                  clock_mhz: float = 100.0, force: bool = False, quiet: bool = False, inputs_npy: str | None = None,
                  min_agreement: float | None = None, max_acc_bits: int | None = None):
    """Compile MODEL.onnx (QONNX export or lowered graph) into the HLS project OUT; prints the
    folding/estimate table. ``inputs_npy``: calibration inputs of the rounding contract (layers
    with non-dyadic scales). Returns the CompileResult."""
    from .project import compile

    calibration = None
    if inputs_npy is not None:
        def calibration():
            x = _load_inputs(inputs_npy)
            return x, f"{len(x)} inputs from {inputs_npy}"
    res = compile(model, out, folding=folding, target_fps=target_fps, clock_mhz=clock_mhz, force=force,
                  calibration=calibration, min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    if not quiet:
        print(res.table())
        rep = res.lowering_report
        if rep is not None and rep.calibration_agreement is not None:
            print(rep.contract_line())
        print(f"wrote {res.build_dir} ({len(res.files)} files)")
    return res


def run_csim(build_dir: str, inputs_npy: str, out_npy: str, force: bool = False, quiet: bool = False,
             dump_dir: str | None = None, threads: int | None = None, variant: str = "fast"):
    """Simulate the images of INPUTS_NPY (float32, the model's input domain) through BUILD_DIR's
    design (in a child process, on threads); write the model output to OUT_NPY (and, with ``dump_dir``, every layer's
    output as DUMP_DIR/<layer id>.npy in the lowered graph's layout). Returns the CsimResult."""
    from ..sim import simulate
    from ..sim.verify import cycles_line

    out = Path(out_npy)
    if out.exists() and not force:
        raise OutputPathError("--out already exists", str(out), "pass --force to overwrite it")
    x = _load_inputs(inputs_npy)
    res = simulate(build_dir, x, dump=dump_dir is not None, threads=threads, variant=variant)
    if dump_dir is not None:
        d = Path(dump_dir)
        try:
            d.mkdir(parents=True, exist_ok=True)
            tensors = list(res.taps)
            # layer ids come from the build dir's host/io.json: sanitised again, never trusted as paths
            for tensor, stem in zip(tensors, file_stems([res.tap_layers[t] for t in tensors])):
                np.save(d / f"{stem}.npy", res.taps[tensor])
        except OSError as e:
            raise OutputPathError(f"cannot write the dumps: {e.strerror}", str(d)) from e
    try:
        np.save(out, res.output)
    except OSError as e:
        raise OutputPathError(f"cannot write the output: {e.strerror}", str(out)) from e
    if not quiet:
        print(f"{len(x)} images in {res.seconds:.2f} s ({len(x) / max(res.seconds, 1e-9):,.0f} images/s; "
              f"simulation loop {res.sim_seconds:.2f} s on {res.threads} thread{'s' if res.threads > 1 else ''}); "
              f"wrote {out} {tuple(res.output.shape)} {res.output.dtype}")
        print(res.cycles_table())
        print(cycles_line(res.counts))
    return res


def verify_model(model: str, build_dir: str, inputs_npy: str, as_json: bool = False,
                 threads: int | None = None, variant: str = "fast", min_agreement: float | None = None) -> int:
    """Exported model vs lowered graph (onnxruntime) vs csim on INPUTS_NPY. Exit code 0 when the
    csim equals the lowered graph on every output element, its iteration counters equal the cycle
    estimate, and the lowering's contract holds (bit-equal outputs for an exact lowering, the
    recorded prediction agreement otherwise), 1 otherwise."""
    from ..sim import verify

    x = _load_inputs(inputs_npy)
    res = verify(model, build_dir, x, threads=threads, variant=variant, min_agreement=min_agreement)
    if as_json:
        json.dump(res.to_dict(), sys.stdout, indent=2, sort_keys=True, default=float)
        sys.stdout.write("\n")
    else:
        print(res.summary())
    return 0 if res.ok else 1


@command(
    "compile", "generate the HLS C++ project of a model",
    arg("model", metavar="MODEL.onnx", help="QONNX export (lowered first) or a lowered graph"),
    arg("--out", required=True, metavar="BUILD_DIR", help="project directory to create"),
    arg("--folding", metavar="FOLD.json", help="PE/SIMD per layer ({layer: {\"PE\": p, \"SIMD\": s}}, or a folding.json)"),
    arg("--target-fps", type=float, metavar="F", help="choose the cheapest folding reaching F images/s"),
    arg("--clock-mhz", type=float, default=100.0, metavar="C", help="clock for the estimates (default 100)"),
    arg("--force", action="store_true", help="overwrite a non-empty BUILD_DIR"),
    arg("--inputs", metavar="X.npy", help="calibration inputs on which the coefficient grids of layers with "
                                          "non-dyadic scales are chosen (default: 500 bundled MNIST test images, "
                                          "for models that take MNIST-shaped inputs)"),
    *CONTRACT_ARGS,
    description="Generate a self-contained Vitis HLS project (top function, weights, testbench, Tcl, Makefile,\n"
                "folding.json, report.json) and print the per-layer folding / cycle / LUT / BRAM table.\n"
                "An export with non-dyadic scales is lowered under the rounding contract (see 'abcn-hw lower').",
)
def cmd_compile(args: argparse.Namespace) -> int:
    min_agreement, max_acc_bits = contract_options(args)
    compile_model(args.model, args.out, args.folding, args.target_fps, args.clock_mhz, args.force,
                  inputs_npy=args.inputs, min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    return 0


@command(
    "csim", "C-simulate a generated project on a batch of inputs",
    arg("build_dir", metavar="BUILD_DIR"),
    arg("--inputs", required=True, metavar="X.npy", help="float32 inputs in the model's input domain"),
    arg("--out", required=True, metavar="Y.npy", help="model outputs (shape and dtype of the exported model's)"),
    arg("--force", action="store_true", help="overwrite an existing --out"),
    arg("--dump", metavar="DIR", help="also write each layer's output (DIR/<layer id>.npy, lowered-graph layout)"),
    arg("--threads", type=int, metavar="N", help="simulation threads (default: the usable CPUs; 1 with --dump)"),
    arg("--synthesis-view", action="store_true",
        help="simulate what Vitis HLS synthesises: the synthesizable loops and ap_uint parameter ROMs instead "
                 "of the C-simulation fast paths (much slower; same results)"),
)
def cmd_csim(args: argparse.Namespace) -> int:
    run_csim(args.build_dir, args.inputs, args.out, args.force, dump_dir=args.dump, threads=args.threads,
             variant="synth" if args.synthesis_view else "fast")
    return 0


@command(
    "verify", "check a generated project bit-exact against onnxruntime",
    arg("model", metavar="MODEL.onnx", help="the model BUILD_DIR was compiled from"),
    arg("build_dir", metavar="BUILD_DIR"),
    arg("--inputs", required=True, metavar="X.npy", help="float32 inputs in the model's input domain"),
    arg("--json", action="store_true", help="print a machine-readable summary"),
    arg("--threads", type=int, metavar="N", help="simulation threads (default: the usable CPUs)"),
    arg("--synthesis-view", action="store_true",
        help="simulate what Vitis HLS synthesises: the synthesizable loops and ap_uint parameter ROMs instead "
                 "of the C-simulation fast paths (much slower; same results)"),
    arg("--min-agreement", type=float, metavar="A",
        help="rounding contract to check for a lowering that is not exact (default: the one the build was "
             "lowered with, 0.999 unless compiled with --min-agreement)"),
    description="Run the exported model, the lowered graph (onnxruntime) and the C simulation on the same inputs.\n"
                "Exit 0 when the csim equals the lowered graph on every output element, its iteration counters\n"
                "equal the cycle estimate, and the lowering's contract holds on these inputs (an exact lowering:\n"
                "every output bit-equal to the export's; a rounded one: prediction agreement >= the\n"
                "--min-agreement it was lowered with, 99.9% by default), 1 otherwise, naming the first layer\n"
                "that differs, the stage whose counter differs or the layer that breaks the contract.",
)
def cmd_verify(args: argparse.Namespace) -> int:
    return verify_model(args.model, args.build_dir, args.inputs, args.json, args.threads,
                        "synth" if args.synthesis_view else "fast", args.min_agreement)
