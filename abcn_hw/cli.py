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
from .errors import AbcnError, DataError, OutputPathError, UsageError

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
    return f"{PROG} {name}: error: {' '.join(str(message).split())}"


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
                                                       "training batches (default 0: off)"),
    arg("--resume", action="store_true", help="continue the unfinished run in --out from its last finished epoch"),
    arg("--force", action="store_true", help="overwrite a finished run in --out (or write into a non-empty folder)"),
    arg("--quiet", action="store_true", help="no progress bars or per-epoch lines"),
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
    from .train import train_run

    cfg = _train_config(args)
    result = train_run(cfg)
    return 0 if result is not None else 1


# -- export ----------------------------------------------------------------------------------------

def _resolve_checkpoint(path: str) -> Path:
    p = Path(path)
    return p / "model.pt" if p.is_dir() else p


def _eval_inputs(model, run_dir: Path | None, dataset: str | None, data_dir: str | None, limit: int | None,
                 strict: bool):
    """(images, labels, description) to measure on: --dataset/--data-dir, else the run's
    metrics.json, else the model's default dataset. With ``strict`` False, falls back to random
    images when no dataset can be loaded."""
    import numpy as np

    from .data import load_dataset
    from .train import read_metrics

    metrics = read_metrics(run_dir) if run_dir is not None else None
    if metrics:
        dataset = dataset or metrics.get("dataset")
        data_dir = data_dir if data_dir is not None else metrics.get("data_dir")
        limit = limit if limit is not None else metrics.get("limit_test")
    if dataset is None:
        from .models import MODELS

        spec = MODELS.get(model.config.get("name"))
        dataset = spec.default_dataset if spec else None
    try:
        if dataset is None:
            raise UsageError("cannot tell which dataset to use", fix="pass --dataset")
        ds = load_dataset(dataset, data_dir, limit_test=limit, limit_train=1)
    except DataError:
        if strict:
            raise
        shape = tuple(model.config["input_shape"])
        rng = np.random.default_rng(0)
        n = limit or 64
        images = (rng.integers(0, 256, size=(n,) + shape) / 255.0).astype(np.float32)
        return images, None, f"{n} random images (no {dataset} data: pass --data-dir for test images)"
    if tuple(ds.input_shape) != tuple(model.config["input_shape"]):
        raise UsageError(f"dataset {ds.name} has input shape {tuple(ds.input_shape)}, the model takes "
                         f"{tuple(model.config['input_shape'])}", fix="pass the --dataset the model was trained on")
    return ds.test.images, ds.test.labels, f"{len(ds.test)} {ds.name} test images ({ds.source})"


def _check_out_file(out: Path, force: bool) -> None:
    from .train.rundir import check_writable

    if out.exists() and not out.is_file():
        raise OutputPathError("--out exists and is not a file", str(out), "choose a file path ending in .onnx")
    if out.exists() and not force:
        raise OutputPathError("--out already exists", str(out), "pass --force to overwrite it")
    check_writable(out.parent, "--out folder")


@command(
    "export", "re-export a checkpoint to QONNX and check its fidelity",
    arg("checkpoint", metavar="CHECKPOINT", help="RUN_DIR/model.pt (or a run directory)"),
    arg("--out", required=True, metavar="FILE.onnx", help="QONNX file to write"),
    arg("--dataset", help="dataset of the fidelity images (default: the run's / the model's)"),
    arg("--data-dir", help="folder with the dataset files"),
    arg("--images", type=int, default=64, metavar="K", help="test images for the fidelity check (default 64)"),
    arg("--force", action="store_true", help="overwrite an existing --out"),
)
def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to QONNX; print the fidelity summary on a few test images."""
    from .qonnx_export import export_to_qonnx
    from .train import load_checkpoint, measure_export

    if args.images < 1:
        raise UsageError(f"--images must be >= 1, got {args.images}")
    out = Path(args.out)
    _check_out_file(out, args.force)
    ckpt = _resolve_checkpoint(args.checkpoint)
    model = load_checkpoint(ckpt)
    images, labels, what = _eval_inputs(model, ckpt.parent, args.dataset, args.data_dir, args.images,
                                        strict=args.dataset is not None or args.data_dir is not None)
    images, labels = images[:args.images], None if labels is None else labels[:args.images]
    out.parent.mkdir(parents=True, exist_ok=True)
    export_to_qonnx(model, tuple(model.config["input_shape"]), out)
    report = measure_export(model, out, images, labels)
    print(f"wrote {out}")
    print(f"{report.fidelity.summary()} ({what})")
    if not report.fidelity.ok:
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
    import tempfile

    from .qonnx_export import export_to_qonnx
    from .train import load_checkpoint, measure_export

    if args.limit_test is not None and args.limit_test < 1:
        raise UsageError(f"--limit-test must be >= 1, got {args.limit_test}")
    run = Path(args.run)
    ckpt = _resolve_checkpoint(args.run)
    run_dir = run if run.is_dir() else run.parent
    model = load_checkpoint(ckpt)
    images, labels, what = _eval_inputs(model, run_dir, args.dataset, args.data_dir, args.limit_test, strict=True)
    onnx_path = run_dir / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = not (run.is_dir() and onnx_path.is_file())
        if fresh:
            onnx_path = Path(tmp) / "model.onnx"
            export_to_qonnx(model, tuple(model.config["input_shape"]), onnx_path)
        report = measure_export(model, onnx_path, images, labels)
    result = {"checkpoint": str(ckpt), "qonnx": None if fresh else str(onnx_path), "images": what,
              "test_accuracy": report.model_accuracy, "export_test_accuracy": report.accuracy,
              "export_fidelity": report.fidelity_json()}
    if args.json:
        _emit_json(result)
        return 0
    print(f"measured on {what}")
    print(f"checkpoint accuracy: {_pct(report.model_accuracy)} ({ckpt})")
    print(f"export accuracy:     {_pct(report.accuracy)} ({'fresh export' if fresh else onnx_path})")
    print(report.fidelity.summary())
    return 0


# -- lower / summary -------------------------------------------------------------------------------

def _load_inputs(path: str | None, model_path: str, images: int, data_dir: str | None, dataset: str | None):
    """X for measuring: a .npy file, or the test split of a dataset reshaped to the model input."""
    import numpy as np
    import onnx

    proto = onnx.load(model_path, load_external_data=False)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    if path is not None:
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read --inputs {path}: {e}", fix="pass a .npy file of float32 inputs") from e
        return x, f"{len(x)} inputs from {path}"
    from .data import load_dataset

    ds = load_dataset(dataset or "mnist", data_dir, limit_test=images)
    x = ds.test.images
    want = int(np.prod(dims)) if dims and all(dims) else None
    if want != int(np.prod(x.shape[1:])):
        raise UsageError(f"the model takes inputs of shape {dims}, {ds.name} images are {list(x.shape[1:])}",
                         fix="pass --inputs X.npy with inputs of the model's shape")
    return x.reshape((len(x),) + tuple(dims)), f"{len(x)} {ds.name} test images ({ds.source})"


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
    from .compiler import lower_file

    out = Path(args.out)
    _check_out_file(out, args.force)
    if args.images < 1:
        raise UsageError(f"--images must be >= 1, got {args.images}")
    if not Path(args.model).is_file():
        raise UsageError(f"no such model file: {args.model}", fix="pass the QONNX file written by 'abcn-hw train'")
    min_agreement, max_acc_bits = contract_options(args)
    x, what = (None, None)
    if args.report:
        x, what = _load_inputs(args.inputs, args.model, args.images, args.data_dir, args.dataset)

    def calibration():
        if x is not None:
            return x, what
        if args.inputs:
            return _load_inputs(args.inputs, args.model, args.images, args.data_dir, args.dataset)
        try:  # the default dataset, where it fits the model's input shape
            return _load_inputs(None, args.model, args.images, args.data_dir, args.dataset)
        except UsageError:
            return None

    rep = lower_file(args.model, out, report=args.report, inputs=x, calibration=calibration,
                     min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    if args.json:
        _emit_json(rep.to_dict() | {"inputs": what, "out": str(out)})
        return 0
    if args.report:
        print(f"measured on {what}")
        print(rep.table())
    elif rep.calibration_agreement is not None:
        print(rep.contract_line())
    print(f"wrote {out} ({len(rep.layers)} layers, {'all exact' if rep.exact else 'some layers rounded'})")
    return 0



@command(
    "summary", "per-layer summary: parameters per bit width, memory, binarized share of operations",
    arg("model", metavar="MODEL.onnx", help="QONNX export or lowered graph source"),
    arg("--json", action="store_true", help="machine-readable output"),
)
def cmd_summary(args: argparse.Namespace) -> int:
    from .report.summary import summarise_model, summary_text

    gain, rep = summarise_model(args.model)
    if args.json:
        _emit_json(gain.to_dict() | {"lowering": rep})
    else:
        print(summary_text(gain))
    return 0


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
    arg("--limit-train", type=int, help=argparse.SUPPRESS),
    arg("--out", required=True, metavar="DIR", help="flow directory (stages' artefacts and the report)"),
    description="Train an ABC-Net model, export it to QONNX, lower it to the XNOR-popcount graph, generate\n"
                "the HLS project, C-simulate it on the test set, verify it bit for bit against onnxruntime\n"
                "and write DIR/report.{md,html,json}. A finished stage is skipped unless its inputs changed,\n"
                "so an interrupted flow resumes where it stopped.",
    interrupt_hint=lambda a: f"finished stages are kept; rerun the same command to resume ({a.out})",
)
def cmd_flow(args: argparse.Namespace) -> int:
    from .flow import Flow, FlowConfig

    cfg = FlowConfig(out=Path(args.out), model=args.model, dataset=args.dataset,
                     data_dir=Path(args.data_dir) if args.data_dir else None, weight_bases=args.weight_bases,
                     act_bases=args.act_bases, scale_grid=args.scale_grid, epochs=args.epochs, seed=args.seed,
                     reference=not args.no_reference, stock=not args.no_stock, target_fps=args.target_fps,
                     folding=Path(args.folding) if args.folding else None, clock_mhz=args.clock_mhz,
                     images=args.images, limit_train=args.limit_train, quiet=args.quiet, command=list(args.argv))
    res = Flow(cfg).run()
    v = res["verify"]
    print(f"verify: {'PASS (bit-exact)' if v.get('ok') else 'FAIL'}; report: {res['report']['html']}")
    return 0 if v.get("ok") else 1


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
    arg("--dataset", help="dataset (default: the model's)"),
    arg("--data-dir", help="dataset folder"),
    arg("--out", required=True, metavar="DIR", help="sweep folder: runs/, sweep.md, sweep.json, accuracy_vs_bases.png"),
    description="Train a grid of ABC settings of one model (one abcn-hw train process per run, --jobs at a\n"
                "time; finished runs are reused), lower and compile each setting's first seed, and write\n"
                "DIR/sweep.md, DIR/sweep.json and DIR/accuracy_vs_bases.png.",
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
    out = Path(args.out)
    extra = (["--dataset", args.dataset] if args.dataset else []) + (["--data-dir", args.data_dir] if args.data_dir else [])
    results = run_grid(args.model, points, list(args.seeds), args.epochs, out / "runs", jobs=args.jobs, extra=extra)
    rows = summarise(results)
    hw = {} if args.no_compile else compile_runs(results, jobs=args.jobs, clock_mhz=args.clock_mhz)
    table = sweep_table(rows, hw)
    (out / "sweep.json").write_text(json.dumps({"model": args.model, "epochs": args.epochs, "seeds": args.seeds,
                                                "rows": rows, "hardware": hw}, indent=2, default=str) + "\n")
    (out / "sweep.md").write_text(f"{args.model}, {args.epochs} epochs, seeds {args.seeds}\n\n{table}\n")
    if any(r["mean"] is not None for r in rows):
        plot_accuracy(rows, out / "accuracy_vs_bases.png", f"{args.model}: accuracy vs (M, N)")
    print(table)
    return 0 if all(r["mean"] is not None for r in rows) else 1


# the hardware commands (compile, csim, verify) register themselves with the same registry
from .backend import commands as _backend_commands  # noqa: E402,F401

if __name__ == "__main__":
    # `python -m abcn_hw.cli`: run the importable module, so that the commands other modules register
    # (compile, csim, verify) land in the same registry as the ones above
    from abcn_hw.cli import main as _main

    sys.exit(_main())
