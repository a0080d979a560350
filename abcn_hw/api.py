"""The Python API: the pipeline in a few calls, the same calls the command line makes.

``import abcn_hw as ah`` gives these names (``abcn_hw/__init__.py`` imports them lazily, so the
package itself stays light)::

    run = ah.fit("lenet", out="runs/l33", weight_bases=3, act_bases=3, epochs=2)   # abcn-hw train
    ah.export("runs/l33", out="l33.onnx")                                          # abcn-hw export
    ah.evaluate("runs/l33")                                                        # abcn-hw eval
    low = ah.lower("runs/l33/model.onnx", out="l33.lowered.onnx", inputs=x)        # abcn-hw lower
    ah.summary("runs/l33/model.onnx")                                              # abcn-hw summary
    hw = ah.compile("runs/l33/model.onnx", out="build/l33")                        # abcn-hw compile
    sim = ah.csim("build/l33", x)                                                  # abcn-hw csim
    ver = ah.verify("runs/l33/model.onnx", "build/l33", x)                         # abcn-hw verify
    assert ver.ok

Every call returns a :class:`Result`: its fields are exactly the fields of the command's
``--json`` output (``res.to_dict()`` is that JSON), readable as attributes (``ver.bit_exact``) or
items (``ver["bit_exact"]``); ``str(res)`` is the command's text output; arrays and models that
JSON cannot hold are extra attributes (``sim.output``, ``run.model``). Errors are the
:mod:`abcn_hw.errors` types the command line prints as one line.

Training is ``ah.fit``, not ``ah.train``: ``abcn_hw.train`` (and ``abcn_hw.report``,
``abcn_hw.flow``) are subpackages/modules, and a function of the same name would be replaced by
the module as soon as it is imported. ``ah.run_flow`` is ``abcn-hw flow``.

Long work (threshold measurement on many inputs, the g++ build, C simulation of a large batch)
shows a progress bar when stderr is a terminal and ``quiet`` is not set (:mod:`abcn_hw.progress`);
training shows its per-batch bar under the same rule.

Import direction: this module calls the stages (train, qonnx_export, compiler, backend, sim,
report); :mod:`abcn_hw.flow` and :mod:`abcn_hw.cli` call this module; no stage imports it.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np

from . import progress
from .errors import DataError, OutputPathError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .flow import FlowConfig
    from .train import TrainConfig

PathLike = Union[str, "os.PathLike[str]"]
#: inputs of lower/csim/verify: a float32 array (batch first) or a .npy file holding one
Inputs = Union[np.ndarray, PathLike]

#: images per C-simulation call while a progress bar is shown (so the bar can advance)
CSIM_CHUNK = 1024


# -- results ------------------------------------------------------------------------------------

class Result(Mapping):
    """A command's ``--json`` output as an object.

    The annotated attributes of a subclass document the JSON fields (all present in every result);
    ``to_dict()`` returns the JSON itself. Names in ``EXTRAS`` are Python-only attributes (arrays,
    models, underlying result objects) that are not part of the JSON."""

    EXTRAS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: dict, text: str = "", **extras: Any):
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_text", text)
        for k, v in extras.items():
            object.__setattr__(self, k, v)

    @classmethod
    def fields(cls) -> list[str]:
        """The documented JSON fields (annotations of the class and its bases, minus EXTRAS)."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in getattr(klass, "__annotations__", {}):
                if name not in names and name not in cls.EXTRAS and name != "EXTRAS":
                    names.append(name)
        return names

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict:
        """The command's ``--json`` output (a deep copy)."""
        return json.loads(json.dumps(self._data, default=_json_default))

    def to_json(self) -> str:
        """``to_dict()`` as the command prints it."""
        return json.dumps(self._data, indent=2, default=_json_default)

    def __str__(self) -> str:
        return self._text or self.to_json()

    def __repr__(self) -> str:
        shown = [f"{k}={v!r}" for k, v in self._data.items()
                 if isinstance(v, (bool, int, float, str)) or v is None][:8]
        return f"{type(self).__name__}({', '.join(shown)}{', ...' if len(shown) < len(self._data) else ''})"

    def _repr_pretty_(self, p, cycle) -> None:  # IPython: the text output, as the command prints it
        p.text(str(self))


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return float(o)


class TrainResult(Result):
    """``abcn-hw train --json`` (= the run's metrics.json). Extras: ``model`` (the trained
    torch module, in eval mode on the CPU), ``run_dir``."""

    EXTRAS = ("model", "run_dir")
    model: Any
    run_dir: Path
    # JSON
    dataset: str
    dataset_source: str
    weight_bases: Any
    act_bases: Any
    scale_grid: str
    epochs: int
    seed: int
    test_accuracy: float            # PyTorch model on the test split
    export_test_accuracy: float     # the executed QONNX export on the test split
    export_fidelity: dict           # export vs PyTorch: max_abs_diff, equal_fraction, ok, ...
    parameters: int
    history: list                   # per epoch: loss, train/test accuracy, lr, seconds
    train_seconds: float
    command: list
    files: dict                     # model.pt, model.onnx, checkpoint.pt (in run_dir)


class ExportResult(Result):
    """``abcn-hw export --json``: the QONNX file written and its fidelity against PyTorch."""

    qonnx: str                      # the QONNX file written
    checkpoint: str
    images: str                     # what the fidelity was measured on
    test_accuracy: float | None     # PyTorch model on those images (None without labels)
    export_test_accuracy: float | None
    export_fidelity: dict
    export_exact: bool              # provably bit-exact (dyadic scales), not only measured equal
    exactness: str                  # why, in words


class EvalResult(Result):
    """``abcn-hw eval --json``: checkpoint and executed-export accuracy, and their fidelity."""

    checkpoint: str
    qonnx: str | None               # the run's model.onnx, or None for a fresh export
    images: str
    test_accuracy: float
    export_test_accuracy: float
    export_fidelity: dict


class LowerResult(Result):
    """``abcn-hw lower --json``. Extra: ``report`` (the compiler's LoweringReport)."""

    EXTRAS = ("report",)
    report: Any
    layers: list                    # per layer: op, shapes, M, N, K, exact, acc_bits, threshold, equal_bits ...
    source: str | None
    exact: bool                     # every layer exact: outputs bit-equal to the executed export
    images: int                     # inputs measured on (0: not measured)
    output_equal: float | None      # fraction of output elements bit-equal to the export
    prediction_agreement: float | None
    inputs: str | None              # what was measured on
    out: str                        # the lowered graph written


class SummaryResult(Result):
    """``abcn-hw summary --json``: per-layer computational gain against float32."""

    layers: list
    macs: int
    binary_ops: int
    int_adds: int
    binarized_mac_share: float
    memory_bits_float: int
    memory_bits_binary: int
    memory_compression: float
    energy_float_pj: float
    energy_binary_pj: float
    energy_ratio: float
    energy_source: str
    lowering: dict                  # the lowering report (as lower --json, without measurements)


class CompileResult(Result):
    """``abcn-hw compile --json``: folding and estimates of the generated HLS project. Extra:
    ``project`` (the backend's CompileResult: network, estimate, files)."""

    EXTRAS = ("project",)
    project: Any
    build_dir: str
    folding: dict                   # layer id -> {"PE": p, "SIMD": s}
    estimate: dict                  # fps, ii_cycles, latency, lut, bram18, per-layer rows (estimates, not synthesis)
    files: int


class CsimResult(Result):
    """``abcn-hw csim --json``. Extras: ``output`` (the model output, as the lowered graph
    computes it), ``accumulators`` (the accelerator's integer output), ``taps`` (per-layer dumps
    with ``dump_dir``), ``raw`` (the simulator's CsimResult)."""

    EXTRAS = ("output", "accumulators", "taps", "raw")
    output: np.ndarray
    accumulators: np.ndarray
    taps: dict
    raw: Any
    images: int
    output_shape: list
    output_dtype: str
    out: str | None                 # the .npy written (None: not written)
    dump_dir: str | None
    variant: str                    # "fast" or "synth" (the synthesis view)
    threads: int
    build_seconds: float            # g++ (near 0 when the build cached for these sources was reused)
    seconds: float                  # the batch end to end (host graphs, packing, simulation)
    sim_seconds: float              # the simulation loop only
    images_per_second: float
    cycles_match: bool              # the cycle estimate equals the csim loop counts
    cycles: list                    # per stage: estimated vs counted


class VerifyResult(Result):
    """``abcn-hw verify --json``: exported model vs lowered graph vs C simulation. Extra: ``raw``
    (the simulator's VerifyResult)."""

    EXTRAS = ("raw",)
    raw: Any
    ok: bool                        # bit_exact and the lowering's exactness contract holds
    bit_exact: bool                 # csim == lowered graph (onnxruntime) on every output element
    mismatches: int
    elements: int
    images: int
    prediction_agreement: float
    lowering_exact: bool | None
    contract_ok: bool
    lowered_vs_exported: dict | None
    first_mismatch_layer: str | None
    layer_mismatches: dict
    cycles_match: bool
    cycles: list
    csim_seconds: float


class FlowResult(Result):
    """``abcn-hw flow --json``: each stage's result record (skipped stages: the recorded one)."""

    train: dict
    lower: dict
    compile: dict
    csim: dict
    verify: dict
    report: dict                    # paths of report.md / .html / .json


# -- shared input handling ----------------------------------------------------------------------

def _as_array(inputs: Inputs, what: str = "inputs") -> np.ndarray:
    if isinstance(inputs, np.ndarray):
        return inputs
    if isinstance(inputs, (str, os.PathLike)):
        try:
            x = np.load(str(inputs), allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read the {what}: {e}", str(inputs), "pass a .npy file of float32 images") from e
        if not isinstance(x, np.ndarray):
            raise DataError(f"the {what} file must hold a single array", str(inputs))
        return x
    raise DataError(f"{what} must be a numpy array or a .npy path, got {type(inputs).__name__}")


def test_images(dataset: str = "mnist", data_dir: PathLike | None = None, limit: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (B, C, H, W) in [0, 1], labels int64) of a dataset's test split; mnist
    without ``data_dir`` is the bundled subset (2,000 test images)."""
    from .data import load_dataset

    ds = load_dataset(dataset, data_dir, limit_test=limit, limit_train=1)
    return ds.test.images.astype(np.float32), ds.test.labels


test_images.__test__ = False  # not a pytest test when a test module imports it


def _check_out_file(out: Path, force: bool) -> None:
    from .train.rundir import check_writable

    if out.exists() and not out.is_file():
        raise OutputPathError("--out exists and is not a file", str(out), "choose a file path ending in .onnx")
    if out.exists() and not force:
        raise OutputPathError("--out already exists", str(out), "pass --force to overwrite it")
    check_writable(out.parent, "--out folder")


def _resolve_checkpoint(path: PathLike) -> Path:
    p = Path(path)
    return p / "model.pt" if p.is_dir() else p


def _eval_inputs(model, run_dir: Path | None, dataset: str | None, data_dir: PathLike | None, limit: int | None,
                 strict: bool):
    """(images, labels, description) to measure on: ``dataset``/``data_dir``, else the run's
    metrics.json, else the model's default dataset. With ``strict`` False, falls back to random
    images when no dataset can be loaded."""
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


def _lower_inputs(inputs: Inputs | None, model_path: PathLike, images: int, data_dir: PathLike | None,
                  dataset: str | None) -> tuple[np.ndarray, str]:
    """X for measuring a lowering: given inputs, or the test split of a dataset reshaped to the model input."""
    from .compiler.modelfile import read_model

    if inputs is not None:
        x = _as_array(inputs)
        return x, f"{len(x)} inputs" + (f" from {inputs}" if not isinstance(inputs, np.ndarray) else "")
    proto = read_model(model_path)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    from .data import load_dataset

    ds = load_dataset(dataset or "mnist", data_dir, limit_test=images)
    x = ds.test.images
    want = int(np.prod(dims)) if dims and all(dims) else None
    if want != int(np.prod(x.shape[1:])):
        raise UsageError(f"the model takes inputs of shape {dims}, {ds.name} images are {list(x.shape[1:])}",
                         fix="pass --inputs X.npy with inputs of the model's shape")
    return x.reshape((len(x),) + tuple(dims)), f"{len(x)} {ds.name} test images ({ds.source})"


def _contract(min_agreement: float | None, max_acc_bits: int | None) -> tuple[float, int]:
    """The rounding contract's (min_agreement, max_acc_bits), defaults filled in, validated."""
    from .compiler.contract import check_max_acc_bits, check_min_agreement
    from .compiler.report import DEFAULT_MIN_AGREEMENT
    from .compiler.scales import MAX_ACC_BITS

    return (DEFAULT_MIN_AGREEMENT if min_agreement is None else check_min_agreement(min_agreement),
            MAX_ACC_BITS if max_acc_bits is None else check_max_acc_bits(max_acc_bits))


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{100 * x:.2f}%"


# -- train / export / eval --------------------------------------------------------------------------

def fit(model: str, out: PathLike, *, weight_bases: int | str | None = 3, act_bases: int | str | None = 3,
        dataset: str | None = None, data_dir: PathLike | None = None, scale_grid: str = "fixed",
        scale_bits: int = 4, epochs: int = 10, batch_size: int = 128, lr: float | None = None, seed: int = 0,
        limit_train: int | None = None, limit_test: int | None = None, bn_reestimate: int | None = None,
        resume: bool = False, force: bool = False, quiet: bool = False) -> TrainResult:
    """Train ``model`` (see ``abcn-hw models``) with M = ``weight_bases`` and N = ``act_bases``
    binary bases (``"float"``: the full-precision reference; ``None`` for ``lenet-stock``) and
    export it to QONNX: writes OUT/model.pt, model.onnx, metrics.json (``abcn-hw train``).

    Bit-reproducible on CPU for a given ``seed``. ``quiet``: no per-batch bar or per-epoch lines.
    ``bn_reestimate``: batch-norm re-estimation batches after training (``None``: 50 for ABC and float
    models, 0 for ``lenet-stock``; 0: off), as ``--bn-reestimate``."""
    from .train import STOCK_MODELS, TrainConfig

    if model in STOCK_MODELS:  # Brevitas' stock binary layers: no ABC bases to choose
        weight_bases = act_bases = None
    cfg = TrainConfig(model=model, out=Path(out), weight_bases=weight_bases, act_bases=act_bases, dataset=dataset,
                      data_dir=Path(data_dir) if data_dir is not None else None, scale_grid=scale_grid,
                      scale_bits=scale_bits, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      limit_train=limit_train, limit_test=limit_test, bn_reestimate=bn_reestimate, resume=resume,
                      force=force, quiet=quiet, command=["abcn_hw.fit", model])
    return fit_config(cfg)


def fit_config(cfg: "TrainConfig") -> TrainResult:
    """:func:`fit` from a ready :class:`~abcn_hw.train.TrainConfig` (what ``abcn-hw train`` parses
    its options into). Under torchrun, processes other than rank 0 return an empty result."""
    from .train import train_run

    res = train_run(cfg)
    metrics = res.metrics or {}
    text = "" if not metrics else (
        f"test accuracy {_pct(metrics.get('test_accuracy'))} (PyTorch), "
        f"{_pct(metrics.get('export_test_accuracy'))} (executed QONNX export)\n"
        f"{metrics.get('export_fidelity', {}).get('summary', '')}\nwrote {res.run_dir}")
    return TrainResult(metrics, text, model=res.model, run_dir=Path(res.run_dir))


def export(checkpoint: PathLike, out: PathLike, *, images: int = 64, dataset: str | None = None,
           data_dir: PathLike | None = None, force: bool = False) -> ExportResult:
    """Re-export a checkpoint (RUN_DIR/model.pt or the run dir) to the QONNX file ``out`` and
    measure its fidelity against PyTorch on ``images`` test images (``abcn-hw export``)."""
    from .qonnx_export import export_to_qonnx
    from .train import load_checkpoint, measure_export

    if images < 1:
        raise UsageError(f"--images must be >= 1, got {images}")
    out = Path(out)
    _check_out_file(out, force)
    ckpt = _resolve_checkpoint(checkpoint)
    model = load_checkpoint(ckpt)
    x, labels, what = _eval_inputs(model, ckpt.parent, dataset, data_dir, images,
                                   strict=dataset is not None or data_dir is not None)
    x, labels = x[:images], None if labels is None else labels[:images]
    out.parent.mkdir(parents=True, exist_ok=True)
    export_to_qonnx(model, tuple(model.config["input_shape"]), out)
    report = measure_export(model, out, x, labels)
    from .models.exactness import export_exactness

    exactness = export_exactness(model)
    data = {"qonnx": str(out), "checkpoint": str(ckpt), "images": what, "test_accuracy": report.model_accuracy,
            "export_test_accuracy": report.accuracy, "export_fidelity": report.fidelity_json(),
            "export_exact": exactness.exact, "exactness": exactness.summary()}
    return ExportResult(data, f"wrote {out}\n{report.fidelity.summary()} ({what})\nexport: {exactness.summary()}"
                        + ("" if exactness.exact else "; equal to PyTorch only within a tolerance"))


def evaluate(run: PathLike, *, dataset: str | None = None, data_dir: PathLike | None = None,
             limit_test: int | None = None) -> EvalResult:
    """Accuracy of a run's checkpoint (PyTorch) and of its QONNX export (executed), and their
    fidelity (``abcn-hw eval``). ``run``: a run directory, or a model.pt (exported afresh)."""
    import tempfile

    from .qonnx_export import export_to_qonnx
    from .train import load_checkpoint, measure_export

    if limit_test is not None and limit_test < 1:
        raise UsageError(f"--limit-test must be >= 1, got {limit_test}")
    run = Path(run)
    ckpt = _resolve_checkpoint(run)
    run_dir = run if run.is_dir() else run.parent
    model = load_checkpoint(ckpt)
    x, labels, what = _eval_inputs(model, run_dir, dataset, data_dir, limit_test, strict=True)
    onnx_path = run_dir / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = not (run.is_dir() and onnx_path.is_file())
        if fresh:
            onnx_path = Path(tmp) / "model.onnx"
            export_to_qonnx(model, tuple(model.config["input_shape"]), onnx_path)
        report = measure_export(model, onnx_path, x, labels)
    data = {"checkpoint": str(ckpt), "qonnx": None if fresh else str(onnx_path), "images": what,
            "test_accuracy": report.model_accuracy, "export_test_accuracy": report.accuracy,
            "export_fidelity": report.fidelity_json()}
    text = (f"measured on {what}\ncheckpoint accuracy: {_pct(report.model_accuracy)} ({ckpt})\n"
            f"export accuracy:     {_pct(report.accuracy)} ({'fresh export' if fresh else onnx_path})\n"
            f"{report.fidelity.summary()}")
    return EvalResult(data, text)


# -- compiler ----------------------------------------------------------------------------------

def lower(model: PathLike, out: PathLike, *, inputs: Inputs | None = None, measure: bool | None = None,
          images: int = 500, dataset: str | None = None, data_dir: PathLike | None = None,
          min_agreement: float | None = None, max_acc_bits: int | None = None,
          force: bool = False, quiet: bool = False) -> LowerResult:
    """Lower the QONNX file ``model`` to the exact XNOR-popcount graph ``out`` (``abcn-hw lower``).

    ``measure`` (default: when ``inputs`` are given) also runs the export and the lowered graph on
    ``inputs`` (an array or .npy; default ``images`` test images of ``dataset``) and reports, per
    fused layer, the fraction of next-layer activation bits the integer thresholds reproduce.
    Layers with non-dyadic scales are lowered under the rounding contract (prediction agreement
    >= ``min_agreement``, default 0.999, on those inputs or the default dataset's; accumulators of
    at most ``max_acc_bits``, default 64), see docs/lowering.md."""
    from .compiler import lower_file

    out = Path(out)
    _check_out_file(out, force)
    if images < 1:
        raise UsageError(f"--images must be >= 1, got {images}")
    if not Path(model).is_file():
        raise UsageError(f"no such model file: {model}", fix="pass the QONNX file written by 'abcn-hw train'")
    min_agreement, max_acc_bits = _contract(min_agreement, max_acc_bits)
    if measure is None:
        measure = inputs is not None
    x, what = None, None
    if measure:
        x, what = _lower_inputs(inputs, model, images, data_dir, dataset)

    def calibration():
        if x is not None:
            return x, what
        if inputs is not None:
            return _lower_inputs(inputs, model, images, data_dir, dataset)
        try:  # the default dataset, where it fits the model's input shape
            return _lower_inputs(None, model, images, data_dir, dataset)
        except UsageError:
            return None

    # the export and the lowered graph each run once over x (export_runtime.run advances the bar)
    with progress.task("measure thresholds", total=2 * len(x) if x is not None else 0,
                       enabled=x is not None and progress.wanted(quiet)):
        rep = lower_file(model, out, report=measure, inputs=x, calibration=calibration,
                         min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    data = rep.to_dict() | {"inputs": what, "out": str(out)}
    text = (f"measured on {what}\n{rep.table()}\n" if measure else
            f"{rep.contract_line()}\n" if rep.calibration_agreement is not None else "") + \
        f"wrote {out} ({len(rep.layers)} layers, {'all exact' if rep.exact else 'some layers rounded'})"
    return LowerResult(data, text, report=rep)


def summary(model: PathLike) -> SummaryResult:
    """Per-layer summary of a QONNX export (lowered in memory): parameters per bit width, memory,
    operations, binarized share, estimated energy against float32 (``abcn-hw summary``)."""
    from .report.summary import summarise_model, summary_text

    gain, rep = summarise_model(str(model))
    return SummaryResult(gain.to_dict() | {"lowering": rep}, summary_text(gain))


# -- hardware ----------------------------------------------------------------------------------

def compile(model: PathLike, out: PathLike, *, folding: PathLike | dict | None = None,
            target_fps: float | None = None, clock_mhz: float = 100.0, force: bool = False,
            calibration_inputs: Inputs | None = None, min_agreement: float | None = None,
            max_acc_bits: int | None = None) -> CompileResult:
    """Generate the HLS C++ project of ``model`` (a QONNX export, lowered first, or a lowered
    graph) in ``out`` (``abcn-hw compile``): folding from ``folding`` (PE/SIMD per layer),
    ``target_fps`` (the cheapest folding reaching it) or the balanced default. Resources and
    throughput are estimates (nothing is synthesised). An export with non-dyadic scales is lowered
    under the rounding contract (``min_agreement``, ``max_acc_bits``; see :func:`lower`) on
    ``calibration_inputs`` (default: 500 bundled MNIST test images, for MNIST-shaped models)."""
    from .backend import compile as compile_project

    def calibration():
        x = _as_array(calibration_inputs)
        return x, f"{len(x)} inputs" + ("" if isinstance(calibration_inputs, np.ndarray)
                                        else f" from {calibration_inputs}")

    res = compile_project(model, out, folding=str(folding) if isinstance(folding, (str, os.PathLike)) else folding,
                          target_fps=target_fps, clock_mhz=clock_mhz, force=force,
                          calibration=calibration if calibration_inputs is not None else None,
                          min_agreement=min_agreement, max_acc_bits=max_acc_bits)
    data = {"build_dir": str(res.build_dir), "folding": res.folding, "estimate": res.estimate.to_dict(),
            "files": len(res.files)}
    rep = res.lowering_report
    contract = f"{rep.contract_line()}\n" if rep is not None and rep.calibration_agreement is not None else ""
    return CompileResult(data, f"{res.table()}\n{contract}wrote {res.build_dir} ({len(res.files)} files)", project=res)


def _build_library(build_dir: PathLike, variant: str, quiet: bool) -> float:
    """g++ the in-process simulation library (cached per source content); seconds spent."""
    import time

    from .sim import build

    t0 = time.perf_counter()
    with progress.waiting("g++ build of the C simulation", enabled=progress.wanted(quiet)):
        build(build_dir, variant=variant, library=True)
    return time.perf_counter() - t0


def _simulate(build_dir: PathLike, x: np.ndarray, threads: int | None, variant: str, quiet: bool, host: str = "auto",
              timeout: float | None = None):
    """sim.simulate, split into chunks while a progress bar is shown; (raw result, build seconds)."""
    from .sim import CsimResult as RawCsim, simulate

    build_seconds = _build_library(build_dir, variant, quiet)
    show = progress.wanted(quiet) and len(x) > CSIM_CHUNK
    if not show:
        return simulate(build_dir, x, threads=threads, variant=variant, host=host, timeout=timeout), build_seconds
    parts = []
    with progress.task("C simulation", total=len(x)) as bar:
        for i in range(0, len(x), CSIM_CHUNK):
            parts.append(simulate(build_dir, x[i:i + CSIM_CHUNK], threads=threads, variant=variant, host=host,
                                  timeout=timeout))
            bar.update(len(parts[-1].output))
    counts = []
    for k, first in enumerate(parts[0].counts):
        per = [p.counts[k] for p in parts]
        counted = sum(c["counted"] * len(p.output) for c, p in zip(per, parts)) / len(x)
        counts.append(first | {"counted": counted, "calls": sum(c["calls"] for c in per),
                               "match": all(c["match"] for c in per)})
    raw = RawCsim(np.concatenate([p.output for p in parts]), np.concatenate([p.accumulators for p in parts]),
                  counts, {}, {}, sum(p.seconds for p in parts), sum(p.sim_seconds for p in parts),
                  max(p.threads for p in parts), host=parts[0].host)
    return raw, build_seconds


def csim(build_dir: PathLike, inputs: Inputs, *, out: PathLike | None = None, force: bool = False,
         dump_dir: PathLike | None = None, threads: int | None = None, synthesis_view: bool = False,
         quiet: bool = False, host: str = "auto", timeout: float | None = None) -> CsimResult:
    """C-simulate the generated design in ``build_dir`` on ``inputs`` (float32, the model's input
    domain; an array or .npy) in this process, on ``threads`` threads (``abcn-hw csim``).

    ``out``: also save the model output there (.npy); ``dump_dir``: write every layer's output as
    DUMP_DIR/<layer id>.npy (the per-layer driver runs instead, one thread); ``synthesis_view``:
    simulate the synthesizable loops and ap_uint ROMs instead of the fast paths (same results);
    ``host``: where the host steps run, "auto", "native" or "onnx" (:func:`abcn_hw.sim.simulate`);
    ``timeout``: seconds the design may take for a batch before it is stopped as hung (default:
    scaled to the batch's work, :func:`abcn_hw.sim.csim.default_timeout`; 0: no limit)."""
    from .backend.names import file_stems
    from .sim import simulate
    from .sim.verify import cycles_line

    variant = "synth" if synthesis_view else "fast"
    outp = Path(out) if out is not None else None
    if outp is not None and outp.exists() and not force:
        raise OutputPathError("--out already exists", str(outp), "pass --force to overwrite it")
    x = _as_array(inputs)
    if dump_dir is not None:
        import time

        from .sim.csim import check_host

        check_host(build_dir, host, dump=True)  # a host path the dump cannot take: refused before the g++ build
        t0 = time.perf_counter()
        with progress.waiting("g++ build of the per-layer driver", enabled=progress.wanted(quiet)):
            from .sim import build

            build(build_dir, dump=True, variant=variant)
        build_seconds = time.perf_counter() - t0
        res = simulate(build_dir, x, dump=True, threads=threads, variant=variant, host=host, timeout=timeout)
        d = Path(dump_dir)
        try:
            d.mkdir(parents=True, exist_ok=True)
            tensors = list(res.taps)
            # layer ids come from the build dir's host/io.json: sanitised again, never trusted as paths
            for tensor, stem in zip(tensors, file_stems([res.tap_layers[t] for t in tensors])):
                np.save(d / f"{stem}.npy", res.taps[tensor])
        except OSError as e:
            raise OutputPathError(f"cannot write the dumps: {e.strerror}", str(d)) from e
    else:
        res, build_seconds = _simulate(build_dir, x, threads, variant, quiet, host, timeout)
    if outp is not None:
        try:
            np.save(outp, res.output)
        except OSError as e:
            raise OutputPathError(f"cannot write the output: {e.strerror}", str(outp)) from e
    data = {"images": len(res.output), "output_shape": list(res.output.shape), "output_dtype": str(res.output.dtype),
            "out": str(outp) if outp is not None else None, "dump_dir": str(dump_dir) if dump_dir is not None else None,
            "variant": variant, "host": res.host, "threads": res.threads, "build_seconds": round(build_seconds, 3),
            "seconds": round(res.seconds, 3), "sim_seconds": round(res.sim_seconds, 3),
            "images_per_second": round(len(res.output) / max(res.seconds, 1e-9), 1),
            "cycles_match": res.cycles_match, "cycles": res.counts}
    n = len(res.output)
    text = (f"{n} images in {res.seconds:.2f} s ({n / max(res.seconds, 1e-9):,.0f} images/s; simulation loop "
            f"{res.sim_seconds:.2f} s on {res.threads} thread{'s' if res.threads > 1 else ''})"
            + (f"; wrote {outp} {tuple(res.output.shape)} {res.output.dtype}" if outp is not None else "")
            + f"\n{res.cycles_table()}\n{cycles_line(res.counts)}")
    return CsimResult(data, text, output=res.output, accumulators=res.accumulators, taps=res.taps, raw=res)


def verify(model: PathLike, build_dir: PathLike, inputs: Inputs, *, threads: int | None = None,
           synthesis_view: bool = False, csim_result: CsimResult | None = None, min_agreement: float | None = None,
           quiet: bool = False, host: str = "auto", timeout: float | None = None) -> VerifyResult:
    """Run the exported model, the lowered graph (onnxruntime) and the C simulation of
    ``build_dir`` on the same inputs (``abcn-hw verify``). ``ok``: the csim equals the lowered
    graph on every output element and the lowering's exactness contract holds; otherwise
    ``first_mismatch_layer`` names the first layer that differs. ``csim_result``: a :func:`csim`
    result on exactly these inputs, reused instead of simulating again. ``min_agreement``: the
    rounding contract to check for a lowering that is not exact (default: the build's). ``host``: where
    the C simulation's host steps run, "auto", "native" or "onnx" (:func:`abcn_hw.sim.simulate`).
    ``timeout``: the C simulation's time limit, as in :func:`csim`."""
    from .sim import verify as sim_verify

    variant = "synth" if synthesis_view else "fast"
    x = _as_array(inputs)
    raw_csim = csim_result.raw if csim_result is not None else None
    if raw_csim is None and progress.wanted(quiet) and x.dtype == np.float32 and len(x):
        # on a terminal: simulate here, with the g++ and batch bars; verify() reuses the result
        try:
            raw_csim, _ = _simulate(build_dir, x, threads, variant, quiet, host, timeout)
        except (DataError, UsageError):
            raw_csim = None  # verify() reports the problem in its own words (model/build checks first)
    with progress.task("reference runs (export, lowered graph)", total=2 * len(x),
                       enabled=progress.wanted(quiet) and len(x) > CSIM_CHUNK):
        res = sim_verify(model, build_dir, x, csim_result=raw_csim, threads=threads, variant=variant,
                         min_agreement=min_agreement, host=host, timeout=timeout)
    return VerifyResult(res.to_dict(), res.summary(), raw=res)


# -- the design space ----------------------------------------------------------------------------

class DesignSpace(Result):
    """``abcn-hw sweep``'s design-space data: per ABC setting, accuracy against estimated LUT
    (default folding) and against the FPS reachable within one LUT budget, Pareto-optimal points
    marked. ``plot(path=None)`` draws both views (a matplotlib Figure); ``str()`` is the table."""

    lut_budget: float | None        # the fixed budget of the FPS view (default: the cheapest setting's LUT)
    clock_mhz: float
    points: list                    # per setting: setting, weight_bases, act_bases, accuracy, lut, bram18, fps,
                                    # fps_at_budget, lut_at_budget, folding_at_budget, pareto_lut, pareto_fps
    reference: dict | None          # the float reference (accuracy only), when given

    def plot(self, path: PathLike | None = None, title: str | None = None):
        """Accuracy vs estimated LUT and vs FPS within the budget, Pareto fronts marked."""
        from .report import design_space as ds

        return ds.plot(self.points, self.lut_budget, self.clock_mhz, self.reference, path, title)


def design_space(runs: Mapping[str, Any], *, lut_budget: float | None = None, clock_mhz: float = 100.0,
                 reference: str | None = None, accuracy: Mapping[str, float] | None = None) -> DesignSpace:
    """The design space of trained runs: ``runs`` maps a label (e.g. "ABC (3,3)") to a run
    directory (or a :class:`TrainResult`); ``reference`` names the label of a float run, shown as
    an accuracy line only. Each setting's hardware estimate is that of ``abcn-hw compile`` with the
    default folding (RUN_DIR/build/report.json when it is newer than the export, else compiled
    into a temporary folder); the FPS view searches the fastest folding within ``lut_budget``.
    ``accuracy``: label -> accuracy to plot instead of the run's own (e.g. a mean over seeds)."""
    import tempfile

    from .report import design_space as ds

    points, ref = [], None
    for label, run in runs.items():
        run_dir = Path(run.run_dir) if isinstance(run, TrainResult) else Path(run)
        metrics_file = run_dir / "metrics.json"
        if not metrics_file.is_file():
            raise UsageError(f"not a finished run: {run_dir} has no metrics.json", where=label,
                             fix="train it first (ah.fit / abcn-hw train)")
        m = json.loads(metrics_file.read_text())
        point = {"setting": label, "weight_bases": m.get("weight_bases"), "act_bases": m.get("act_bases"),
                 "accuracy": (accuracy or {}).get(label, m.get("test_accuracy"))}
        if label == reference or m.get("weight_bases") == "float":
            ref = point
            continue
        onnx_path = run_dir / "model.onnx"
        rep_path = run_dir / "build" / "report.json"
        if rep_path.is_file() and rep_path.stat().st_mtime >= onnx_path.stat().st_mtime:
            est, net = json.loads(rep_path.read_text())["estimate"], ds.network_of(onnx_path)
        else:
            with tempfile.TemporaryDirectory(prefix="abcn_ds_") as tmp:
                hw = compile(onnx_path, Path(tmp) / "build", clock_mhz=clock_mhz)
            est, net = hw.estimate, hw.project.network
        if est.get("clock_mhz") != clock_mhz:  # a build for another clock: same cycles, rescaled
            est = est | {"fps": est["fps"] * clock_mhz / est["clock_mhz"]}
        point.update({"lut": est["lut"], "bram18": est["bram18"], "fps": est["fps"], "net": net})
        points.append(point)
    if lut_budget is None and points:
        lut_budget = float(min(p["lut"] for p in points))
    for p in points:
        net = p.pop("net")  # the default folding is a target-FPS folding too: always a candidate
        best = ds.fps_within_lut(net, lut_budget, clock_mhz, targets=(p["fps"] * (1 - 1e-9),)) if lut_budget else None
        p.update({"fps_at_budget": best and best["fps"], "lut_at_budget": best and best["lut"],
                  "folding_at_budget": best and best["folding"]})
    ds.mark_fronts(points)
    data = {"lut_budget": lut_budget, "clock_mhz": clock_mhz, "points": points, "reference": ref}
    return DesignSpace(data, ds.table(points, lut_budget, clock_mhz, ref))


# -- the whole job -------------------------------------------------------------------------------

def run_flow(out: PathLike, *, model: str = "lenet", weight_bases: int = 3, act_bases: int = 3, epochs: int = 10,
             seed: int = 0, dataset: str | None = None, data_dir: PathLike | None = None,
             scale_grid: str = "fixed", reference: bool = True, target_fps: float | None = None,
             folding: PathLike | None = None, clock_mhz: float = 100.0, images: int | None = None,
             limit_train: int | None = None, quiet: bool = False) -> FlowResult:
    """train -> export -> lower -> compile -> csim -> verify -> report in ``out`` (``abcn-hw flow``);
    finished stages whose inputs did not change are skipped, so a rerun resumes. ``limit_train``:
    train on the first K training images only (as in :func:`fit`)."""
    from .flow import FlowConfig

    cfg = FlowConfig(out=Path(out), model=model, dataset=dataset, data_dir=Path(data_dir) if data_dir else None,
                     weight_bases=weight_bases, act_bases=act_bases, scale_grid=scale_grid, epochs=epochs, seed=seed,
                     reference=reference, target_fps=target_fps, folding=Path(folding) if folding else None,
                     clock_mhz=clock_mhz, images=images, limit_train=limit_train, quiet=quiet,
                     command=["abcn_hw.run_flow"])
    return flow_config(cfg)


def flow_config(cfg: "FlowConfig") -> FlowResult:
    """:func:`run_flow` from a ready :class:`~abcn_hw.flow.FlowConfig`."""
    from .flow import Flow

    res = Flow(cfg).run()
    v = res["verify"]
    return FlowResult(res, f"verify: {'PASS (bit-exact)' if v.get('ok') else 'FAIL'}; report: {res['report']['html']}")


def flow_report(flow_dir: PathLike) -> dict:
    """Everything a flow directory's report shows (accuracy per stage, verification, hardware
    estimate, per-layer rows, computational gain), as written to DIR/report.json."""
    from .report.flow_report import collect

    return collect(Path(flow_dir))


__all__ = ["CompileResult", "CsimResult", "DesignSpace", "EvalResult", "ExportResult", "FlowResult", "LowerResult",
           "Result", "SummaryResult", "TrainResult", "VerifyResult", "compile", "csim", "design_space", "evaluate",
           "export", "fit", "fit_config", "flow_config", "flow_report", "lower", "run_flow", "summary", "test_images",
           "verify"]
