"""``abcn-hw``: the command-line interface.

Each command is one function registered with :func:`command`, which also declares its
arguments::

    @command("lower", "lower a QONNX export to the integer graph",
             arg("onnx", help="QONNX file"), arg("--out", required=True))
    def cmd_lower(args: argparse.Namespace) -> int:
        ...
        return 0

Errors: every :class:`~abcn_hw.errors.AbcnError` becomes one line ``abcn-hw <command>: error:
<message>`` on stderr and the process exits with the error's ``exit_code``; command-line usage
errors exit 2 the same way; Ctrl-C exits 130 (with the command's resume hint, if any).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import AbcnError, UsageError

PROG = "abcn-hw"


# -- command registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call, recorded for later."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """Declare an argument exactly as ``ArgumentParser.add_argument`` takes it."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    args: tuple[Arg, ...] = ()
    description: str | None = None
    interrupt_hint: Callable[[argparse.Namespace], str | None] | None = None


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *args: Arg, description: str | None = None,
            interrupt_hint: Callable[[argparse.Namespace], str | None] | None = None):
    """Register the decorated ``fn(args) -> exit code`` as ``abcn-hw <name>``."""

    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, fn, tuple(args), description or fn.__doc__, interrupt_hint)
        return fn

    return register


class _ParseError(Exception):
    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog, self.message = prog, message


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors surface as one line (handled in :func:`main`)."""

    def error(self, message: str):  # type: ignore[override]
        raise _ParseError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered command."""
    parser = _Parser(prog=PROG, description="ABC-Net (Accurate Binary Convolutional Networks): "
                                            "Brevitas training to FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        for a in cmd.args:
            p.add_argument(*a.flags, **a.options)
        p.set_defaults(_command=cmd)
    return parser


def _error_line(name: str, message: str) -> str:
    """One line; an error's detail lines (grouped problems) follow it, indented. Whitespace runs are
    collapsed and other control characters (from untrusted names) escaped."""
    def clean(text: str) -> str:
        text = " ".join(text.split())
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)

    head, *details = str(message).split("\n")
    return "\n".join([f"{PROG} {name}: error: {clean(head)}"] + ["  " + clean(d) for d in details if d.strip()])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``abcn-hw``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ParseError as e:
        print(f"{e.prog}: error: {e.message} (see '{e.prog} --help')", file=sys.stderr)
        return UsageError.exit_code
    except SystemExit as e:  # --help / --version
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    cmd: Command = args._command
    args.argv = [PROG] + argv
    try:
        with warnings.catch_warnings():
            _quiet_library_warnings()
            return int(cmd.run(args) or 0)
    except AbcnError as e:
        print(_error_line(cmd.name, str(e)), file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        hint = cmd.interrupt_hint(args) if cmd.interrupt_hint else None
        print(f"\n{PROG} {cmd.name}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130


# -- shared helpers ----------------------------------------------------------------------------------

def _quiet_library_warnings() -> None:
    warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"brevitas(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


# -- models ----------------------------------------------------------------------------------------

@command("models", "list the model zoo")
def cmd_models(args: argparse.Namespace) -> int:
    """List the model zoo: name, input shape (C,H,W), default dataset, description."""
    from .models import list_models
    from .train import STOCK_MODELS

    rows = [(s.name, "x".join(map(str, s.input_shape)), s.default_dataset, s.description) for s in list_models()]
    specs = {s.name: s for s in list_models()}
    for stock, base in STOCK_MODELS.items():
        s = specs[base]
        rows.append((stock, "x".join(map(str, s.input_shape)), s.default_dataset,
                     f"Brevitas stock binary {base} (peer baseline; no --weight-bases/--act-bases)"))
    header = ("MODEL", "INPUT", "DATASET", "DESCRIPTION")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    for r in [header] + rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return 0


# -- train -----------------------------------------------------------------------------------------

def _train_resume_hint(args: argparse.Namespace) -> str | None:
    out = getattr(args, "out", None)
    if out and (Path(out) / "checkpoint.pt").exists():
        return f"the last finished epoch is in {Path(out) / 'checkpoint.pt'}; rerun the same command with --resume"
    return "no epoch had finished, so there is nothing to resume"


_TRAIN_OPTIONS = ("model", "dataset", "weight_bases", "act_bases", "scale_grid", "scale_bits", "epochs",
                  "batch_size", "lr", "seed", "limit_train", "limit_test", "teacher", "kd_weight",
                  "kd_temperature", "warmup_epochs", "bn_reestimate")


def _train_config(args: argparse.Namespace):
    """TrainConfig from the parsed options (with --resume, unset options come from the checkpoint)."""
    from .train import TrainConfig, saved_train_config

    given = {k: getattr(args, k) for k in _TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.out is None:
        raise UsageError("--out is required", fix="pass --out RUN_DIR")
    if args.resume:
        saved = saved_train_config(args.out)
        merged = {k: saved.get(k) for k in _TRAIN_OPTIONS if saved.get(k) is not None}
        merged.update(given)
        given = merged
        if args.data_dir is None and saved.get("data_dir"):
            args.data_dir = saved["data_dir"]
    if "model" not in given:
        raise UsageError("--model is required", fix="pass --model NAME (see 'abcn-hw models')")
    return TrainConfig(out=Path(args.out), data_dir=args.data_dir, device=args.device, resume=args.resume,
                       force=args.force, quiet=args.quiet, command=list(args.argv), **given)


@command(
    "train", "train an ABC-Net model and export it to QONNX",
    arg("--model", help="zoo model (see 'abcn-hw models'); 'lenet-stock' is the Brevitas stock binary "
                        "LeNet baseline (takes no --weight-bases/--act-bases)"),
    arg("--dataset", help="mnist, fashion-mnist or cifar10 (default: the model's default dataset)"),
    arg("--data-dir", help="folder with the dataset files (mnist without it: the bundled 8,000/2,000 subset)"),
    arg("--weight-bases", metavar="M", help="binary weight bases 1..8, or 'float' (full-precision reference)"),
    arg("--act-bases", metavar="N", help="binary activation bases 1..8, or 'float'"),
    arg("--scale-grid", choices=("fixed", "pow2", "float"), help="grid of the scales alpha/beta (default fixed)"),
    arg("--scale-bits", type=int, metavar="B", help="magnitude bits of a 'fixed' scale (default 4)"),
    arg("--epochs", type=int, metavar="E", help="training epochs (default 10)"),
    arg("--batch-size", type=int, metavar="B", help="global batch size (default 128; split over torchrun processes)"),
    arg("--lr", type=float, help="Adam learning rate (default 5e-3), cosine-decayed to 0 over the run"),
    arg("--seed", type=int, help="random seed (default 0); runs are bit-reproducible on CPU"),
    arg("--teacher", metavar="RUN_DIR", help="distil from this finished run's model (e.g. the float reference "
                                             "of the same topology on the same dataset)"),
    arg("--kd-weight", type=float, metavar="W", help="with --teacher: loss = (1-W) CE + W T^2 KL (default 0.9)"),
    arg("--kd-temperature", type=float, metavar="T", help="with --teacher: softmax temperature (default 1)"),
    arg("--warmup-epochs", type=int, metavar="E", help="linear learning-rate warm-up before the cosine decay "
                                                       "(default 0)"),
    arg("--bn-reestimate", type=int, metavar="K", help="after training, recompute batch-norm statistics from K "
                                                       "training batches (default 50 for ABC and float models, "
                                                       "0 for lenet-stock; 0: off)"),
    arg("--resume", action="store_true", help="continue the unfinished run in --out from its last finished epoch"),
    arg("--force", action="store_true", help="overwrite a finished run in --out (or write into a non-empty folder)"),
    arg("--quiet", action="store_true", help="no progress bars or per-epoch lines"),
    arg("--json", action="store_true", help="print metrics.json when done (implies --quiet)"),
    arg("--device", choices=("auto", "cpu", "cuda"), default="auto", help=argparse.SUPPRESS),
    arg("--limit-train", type=int, help=argparse.SUPPRESS),
    arg("--limit-test", type=int, help=argparse.SUPPRESS),
    arg("--out", metavar="RUN_DIR", help="run directory: model.pt, model.onnx, metrics.json, checkpoint.pt"),
    description="Train an ABC-Net model (M weight bases, N activation bases) and export it to QONNX.\n\n"
                "Writes RUN_DIR/model.pt, model.onnx and metrics.json (last, marking the run finished);\n"
                "RUN_DIR/checkpoint.pt after every epoch. Under torchrun (WORLD_SIZE > 1) trains with DDP;\n"
                "only rank 0 writes and prints.",
    interrupt_hint=_train_resume_hint,
)
def cmd_train(args: argparse.Namespace) -> int:
    """Train, export and measure one model."""
    from .api import fit_config

    if args.json:
        args.quiet = True
    result = fit_config(_train_config(args))
    if args.json and len(result):  # (only rank 0 has the metrics under torchrun)
        _emit_json(result.to_dict())
    return 0




# -- export ----------------------------------------------------------------------------------------

@command(
    "export", "re-export a checkpoint to QONNX and check its fidelity",
    arg("checkpoint", metavar="CHECKPOINT", help="RUN_DIR/model.pt (or a run directory)"),
    arg("--out", required=True, metavar="FILE.onnx", help="QONNX file to write"),
    arg("--dataset", help="dataset of the fidelity images (default: the run's / the model's)"),
    arg("--data-dir", help="folder with the dataset files"),
    arg("--images", type=int, default=64, metavar="K", help="test images for the fidelity check (default 64)"),
    arg("--force", action="store_true", help="overwrite an existing --out"),
    arg("--json", action="store_true", help="print a JSON object instead of text"),
)
def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to QONNX; print the fidelity summary on a few test images."""
    from .api import export

    res = export(args.checkpoint, args.out, images=args.images, dataset=args.dataset, data_dir=args.data_dir,
                 force=args.force)
    print(res.to_json() if args.json else res)
    if not res.export_fidelity["ok"]:
        print("warning: the export does not reproduce the PyTorch model exactly", file=sys.stderr)
    return 0


# -- eval ------------------------------------------------------------------------------------------

@command(
    "eval", "re-measure a run: checkpoint accuracy, executed-export accuracy, fidelity",
    arg("run", metavar="RUN_DIR", help="a run directory (or a model.pt; its export is then made afresh)"),
    arg("--dataset", help="dataset to measure on (default: the run's)"),
    arg("--data-dir", help="folder with the dataset files (default: the run's)"),
    arg("--json", action="store_true", help="print a JSON object instead of text"),
    arg("--limit-test", type=int, help=argparse.SUPPRESS),
)
def cmd_eval(args: argparse.Namespace) -> int:
    """Accuracy of the checkpoint (PyTorch) and of its QONNX export (executed), and their fidelity."""
    from .api import evaluate

    res = evaluate(args.run, dataset=args.dataset, data_dir=args.data_dir, limit_test=args.limit_test)
    print(res.to_json() if args.json else res)
    return 0


# -- lower / summary -------------------------------------------------------------------------------

CONTRACT_ARGS = (
    arg("--min-agreement", type=float, metavar="A",
        help="rounding contract: least prediction agreement (a fraction) of a lowering that is not exact with the "
             "executed export on the calibration inputs (default 0.999; lower it only knowingly: it is reported)"),
    arg("--max-acc-bits", type=int, metavar="B",
        help="widest accumulator/threshold a rounded layer's coefficient grid may need, 8..64 (default 64)"),
)


def contract_options(args: argparse.Namespace) -> tuple[float, int]:
    """(min_agreement, max_acc_bits) from --min-agreement / --max-acc-bits, validated."""
    from .compiler.contract import check_max_acc_bits, check_min_agreement
    from .compiler.report import DEFAULT_MIN_AGREEMENT
    from .compiler.scales import MAX_ACC_BITS

    a = DEFAULT_MIN_AGREEMENT if args.min_agreement is None else check_min_agreement(args.min_agreement)
    b = MAX_ACC_BITS if args.max_acc_bits is None else check_max_acc_bits(args.max_acc_bits)
    return a, b


@command(
    "lower", "lower a QONNX export to the exact XNOR-popcount graph",
    arg("model", metavar="MODEL.onnx", help="QONNX export (ours or a Brevitas BNN-PYNQ export)"),
    arg("--out", required=True, metavar="LOWERED.onnx", help="where to write the lowered graph"),
    arg("--report", action="store_true", help="print the per-layer table and measure agreement with the export"),
    arg("--inputs", metavar="X.npy", help="inputs for --report and the calibration inputs on which the coefficient "
                                          "grids of layers with non-dyadic scales are chosen (default: bundled "
                                          "MNIST test images, for models that take MNIST-shaped inputs)"),
    arg("--images", type=int, default=500, help="how many dataset test images --report / calibration use (default 500)"),
    arg("--dataset", help="dataset for --report / calibration inputs (default mnist)"),
    arg("--data-dir", help="dataset folder for --report / calibration inputs"),
    *CONTRACT_ARGS,
    arg("--json", action="store_true", help="print the report as JSON"),
    arg("--force", action="store_true", help="overwrite --out"),
    description="Lower a QONNX export: every binary Conv/MatMul becomes an XNOR-popcount op on packed bits,\n"
                "scales, batch norm and the next layer's activation shifts fold into one integer multi-base\n"
                "threshold unit per channel. Unsupported nodes are all listed before anything is written (exit 2).\n"
                "Layers with non-dyadic scales get the coarsest coefficient grid that keeps the rounding contract\n"
                "(prediction agreement with the executed export >= --min-agreement on the calibration inputs);\n"
                "when no grid within --max-acc-bits meets it, nothing is written (exit 2, the layer named).",
)
def cmd_lower(args: argparse.Namespace) -> int:
    from .api import lower

    min_agreement, max_acc_bits = contract_options(args)
    res = lower(args.model, args.out, inputs=args.inputs, measure=args.report, images=args.images,
                dataset=args.dataset, data_dir=args.data_dir, force=args.force, quiet=args.json,
                min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    print(res.to_json() if args.json else res)
    return 0


@command(
    "summary", "per-layer summary: parameters per bit width, memory, binarized share of operations",
    arg("model", metavar="MODEL.onnx", help="QONNX export or lowered graph source"),
    arg("--json", action="store_true", help="machine-readable output"),
)
def cmd_summary(args: argparse.Namespace) -> int:
    from .api import summary

    res = summary(args.model)
    print(res.to_json() if args.json else res)
    return 0


# -- compile / csim / verify -------------------------------------------------------------------------

_SYNTH_VIEW = ("simulate what Vitis HLS synthesises: the synthesizable loops and ap_uint parameter ROMs instead "
               "of the C-simulation fast paths (much slower; same results)")
_HOST = ("where the host steps (input quantisation, packing, unpacking, output affine) run: native = compiled into "
         "the simulation library (tb/csim_host.cpp), onnx = host/pre.onnx and host/post.onnx in onnxruntime, "
         "auto = native where the build dir has it (default)")

#: simulate()'s host paths (abcn_hw.sim.csim.HOSTS; not imported here, to keep the CLI's start fast)
_HOSTS = ("auto", "native", "onnx")
_TIMEOUT = ("stop a design that gives no result within SECONDS (a hand-edited design that loops forever or "
            "deadlocks); default: 120 s plus an allowance scaled to the batch's work (the cycle estimate); 0: no limit")


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
    arg("--json", action="store_true", help="print a JSON object (folding, estimate) instead of the table"),
    description="Generate a self-contained Vitis HLS project (top function, weights, testbench, Tcl, Makefile,\n"
                "folding.json, report.json) and print the per-layer folding / cycle / LUT / BRAM table.\n"
                "An export with non-dyadic scales is lowered under the rounding contract (see 'abcn-hw lower').",
)
def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile

    min_agreement, max_acc_bits = contract_options(args)
    res = compile(args.model, args.out, folding=args.folding, target_fps=args.target_fps, clock_mhz=args.clock_mhz,
                  force=args.force, calibration_inputs=args.inputs, min_agreement=min_agreement,
                  max_acc_bits=max_acc_bits)
    print(res.to_json() if args.json else res)
    return 0


@command(
    "csim", "C-simulate a generated project on a batch of inputs",
    arg("build_dir", metavar="BUILD_DIR"),
    arg("--inputs", required=True, metavar="X.npy", help="float32 inputs in the model's input domain"),
    arg("--out", required=True, metavar="Y.npy", help="model outputs (shape and dtype of the exported model's)"),
    arg("--force", action="store_true", help="overwrite an existing --out"),
    arg("--dump", metavar="DIR", help="also write each layer's output (DIR/<layer id>.npy, lowered-graph layout)"),
    arg("--threads", type=int, metavar="N", help="simulation threads (default: the usable CPUs; 1 with --dump)"),
    arg("--synthesis-view", action="store_true", help=_SYNTH_VIEW),
    arg("--host", choices=_HOSTS, default="auto", help=_HOST),
    arg("--timeout", type=float, metavar="SECONDS", help=_TIMEOUT),
    arg("--json", action="store_true", help="print a JSON object (times, cycle check) instead of text"),
)
def cmd_csim(args: argparse.Namespace) -> int:
    from .api import csim

    res = csim(args.build_dir, args.inputs, out=args.out, force=args.force, dump_dir=args.dump, threads=args.threads,
               synthesis_view=args.synthesis_view, quiet=args.json, host=args.host, timeout=args.timeout)
    print(res.to_json() if args.json else res)
    return 0


@command(
    "verify", "check a generated project bit-exact against onnxruntime",
    arg("model", metavar="MODEL.onnx", help="the model BUILD_DIR was compiled from"),
    arg("build_dir", metavar="BUILD_DIR"),
    arg("--inputs", required=True, metavar="X.npy", help="float32 inputs in the model's input domain"),
    arg("--json", action="store_true", help="print a machine-readable summary"),
    arg("--threads", type=int, metavar="N", help="simulation threads (default: the usable CPUs)"),
    arg("--synthesis-view", action="store_true", help=_SYNTH_VIEW),
    arg("--host", choices=_HOSTS, default="auto", help=_HOST),
    arg("--timeout", type=float, metavar="SECONDS", help=_TIMEOUT),
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
    from .api import verify

    res = verify(args.model, args.build_dir, args.inputs, threads=args.threads, synthesis_view=args.synthesis_view,
                 quiet=args.json, min_agreement=args.min_agreement, host=args.host, timeout=args.timeout)
    if args.json:
        json.dump(res.to_dict(), sys.stdout, indent=2, sort_keys=True, default=float)
        sys.stdout.write("\n")
    else:
        print(res)
    return 0 if res.ok else 1


# -- flow ------------------------------------------------------------------------------------------

@command(
    "flow", "the main job: train -> export -> lower -> compile -> csim -> verify -> report",
    arg("--model", default="lenet", help="zoo model (default lenet)"),
    arg("--dataset", help="dataset (default: the model's; mnist = the bundled subset unless --data-dir)"),
    arg("--data-dir", help="dataset folder"),
    arg("--weight-bases", type=int, default=3, metavar="M", help="binary weight bases 1..8 (default 3)"),
    arg("--act-bases", type=int, default=3, metavar="N", help="binary activation bases 1..8 (default 3)"),
    arg("--scale-grid", choices=("fixed", "pow2", "float"), default="fixed", help="scale grid (default fixed)"),
    arg("--epochs", type=int, default=10, metavar="E", help="training epochs (default 10)"),
    arg("--seed", type=int, default=0, help="random seed (default 0)"),
    arg("--no-reference", action="store_true", help="skip training the baselines of the same topology (float32 "
                                                    "reference and stock binary)"),
    arg("--no-stock", action="store_true", help="skip training the Brevitas stock binary baseline (lenet-stock)"),
    arg("--target-fps", type=float, metavar="F", help="choose the folding for this throughput"),
    arg("--folding", metavar="FOLD.json", help="per-layer PE/SIMD (exclusive with --target-fps)"),
    arg("--clock-mhz", type=float, default=100.0, metavar="C", help="clock for the estimates (default 100)"),
    arg("--images", type=int, metavar="K", help="test images for csim/verify (default: the whole test split)"),
    arg("--quiet", action="store_true", help="no progress bars"),
    arg("--json", action="store_true", help="print every stage's result record as JSON when done"),
    arg("--limit-train", type=int, help=argparse.SUPPRESS),
    arg("--out", required=True, metavar="DIR", help="flow directory (stages' artefacts and the report)"),
    description="Train an ABC-Net model, export it to QONNX, lower it to the XNOR-popcount graph, generate\n"
                "the HLS project, C-simulate it on the test set, verify it bit for bit against onnxruntime\n"
                "and write DIR/report.{md,html,json}. A finished stage is skipped unless its inputs changed,\n"
                "so an interrupted flow resumes where it stopped.",
    interrupt_hint=lambda a: f"finished stages are kept; rerun the same command to resume ({a.out})",
)
def cmd_flow(args: argparse.Namespace) -> int:
    from .api import flow_config
    from .flow import FlowConfig

    cfg = FlowConfig(out=Path(args.out), model=args.model, dataset=args.dataset,
                     data_dir=Path(args.data_dir) if args.data_dir else None, weight_bases=args.weight_bases,
                     act_bases=args.act_bases, scale_grid=args.scale_grid, epochs=args.epochs, seed=args.seed,
                     reference=not args.no_reference, stock=not args.no_stock, target_fps=args.target_fps,
                     folding=Path(args.folding) if args.folding else None, clock_mhz=args.clock_mhz,
                     images=args.images, limit_train=args.limit_train, quiet=args.quiet or args.json, command=list(args.argv))
    res = flow_config(cfg)
    print(res.to_json() if args.json else res)
    return 0 if res.verify.get("ok") else 1


def _sweep_design_space(results, rows: list[dict], hw: dict, args: argparse.Namespace):
    """The design space of the compiled settings (first seed's build, mean accuracy over seeds)."""
    from .api import design_space

    firsts = {}
    for r in results:
        if r.error is None and r.point.label not in firsts and (r.point.label in hw or r.point.weight_bases == "float"):
            if "error" not in hw.get(r.point.label, {}):
                firsts[r.point.label] = r.run_dir
    if not any(label in hw for label in firsts):
        return None
    means = {r["setting"]: r["mean"] for r in rows if r["mean"] is not None}
    return design_space(firsts, lut_budget=args.lut_budget, clock_mhz=args.clock_mhz,
                        reference="float" if "float" in firsts else None, accuracy=means)


# -- sweep -----------------------------------------------------------------------------------------

@command(
    "sweep", "train and compile a grid of (M, N) settings in parallel; one comparison table and plot",
    arg("--model", required=True, help="zoo model"),
    arg("--bases", default="1x1,3x1,3x3,5x5", help="comma-separated MxN settings (default 1x1,3x1,3x3,5x5)"),
    arg("--float", dest="with_float", action="store_true", help="also train the float32 reference"),
    arg("--stock", action="store_true", help="also train the Brevitas stock binary baseline (lenet only)"),
    arg("--epochs", type=int, default=10, help="epochs per run (default 10)"),
    arg("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)"),
    arg("--jobs", type=int, default=2, help="parallel processes (default 2)"),
    arg("--no-compile", action="store_true", help="train only; skip lowering and compiling"),
    arg("--clock-mhz", type=float, default=100.0, help="clock for the hardware estimates (default 100)"),
    arg("--lut-budget", type=float, metavar="L", help="LUT budget of the FPS view of the design-space plot "
                                                      "(default: the cheapest setting's estimated LUT)"),
    arg("--dataset", help="dataset (default: the model's)"),
    arg("--data-dir", help="dataset folder"),
    arg("--out", required=True, metavar="DIR", help="sweep folder: runs/, sweep.md, sweep.json, accuracy_vs_bases.png, "
                                                    "design_space.png"),
    description="Train a grid of ABC settings of one model (one abcn-hw train process per run, --jobs at a\n"
                "time; finished runs are reused), lower and compile each setting's first seed, and write\n"
                "DIR/sweep.md, DIR/sweep.json, DIR/accuracy_vs_bases.png and DIR/design_space.png (accuracy vs\n"
                "estimated LUT and vs FPS within a LUT budget, Pareto front marked).",
)
def cmd_sweep(args: argparse.Namespace) -> int:
    from .models import MODELS
    from .report.grid import GridPoint, compile_runs, plot_accuracy, run_grid, summarise, sweep_table

    if args.model not in MODELS:
        raise UsageError(f"unknown model '{args.model}'", where="--model", fix=f"use one of: {', '.join(MODELS)}")
    points = [GridPoint.parse(t) for t in args.bases.split(",") if t.strip()]
    if args.with_float:
        points.insert(0, GridPoint.parse("float"))
    if args.stock:
        if args.model != "lenet":
            raise UsageError("the stock Brevitas baseline exists for lenet only", where="--stock")
        points.append(GridPoint.parse("stock"))
    for flag, v in (("--epochs", args.epochs), ("--jobs", args.jobs)):
        if v < 1:
            raise UsageError(f"{flag} must be >= 1, got {v}")
    if args.lut_budget is not None and not args.lut_budget > 0:
        raise UsageError(f"--lut-budget must be positive, got {args.lut_budget}")
    out = Path(args.out)
    extra = (["--dataset", args.dataset] if args.dataset else []) + (["--data-dir", args.data_dir] if args.data_dir else [])
    results = run_grid(args.model, points, list(args.seeds), args.epochs, out / "runs", jobs=args.jobs, extra=extra)
    rows = summarise(results)
    hw = {} if args.no_compile else compile_runs(results, jobs=args.jobs, clock_mhz=args.clock_mhz)
    table = sweep_table(rows, hw)
    space = _sweep_design_space(results, rows, hw, args)
    (out / "sweep.json").write_text(json.dumps({"model": args.model, "epochs": args.epochs, "seeds": args.seeds,
                                                "rows": rows, "hardware": hw,
                                                "design_space": space.to_dict() if space else None},
                                               indent=2, default=str) + "\n")
    (out / "sweep.md").write_text(f"{args.model}, {args.epochs} epochs, seeds {args.seeds}\n\n{table}\n"
                                  + (f"\n## Design space\n\n{space}\n" if space else ""))
    if any(r["mean"] is not None for r in rows):
        plot_accuracy(rows, out / "accuracy_vs_bases.png", f"{args.model}: accuracy vs (M, N)")
    if space:
        import matplotlib.pyplot as plt

        plt.close(space.plot(out / "design_space.png", f"{args.model}: accuracy vs estimated hardware cost"))
    print(table)
    if space:
        print(f"\n{space}")
    return 0 if all(r["mean"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
