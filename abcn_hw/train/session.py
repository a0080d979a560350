"""One training run end to end: validate -> load data -> build model -> train (resumable, DDP
under torchrun) -> ``model.pt`` + ``model.onnx`` + ``metrics.json`` in the run directory.

Every user-controlled input is checked before anything is written; the run directory is created
only once the data are loaded and the model is built. It is finished when ``metrics.json``
(written last) exists; an interrupted run leaves ``checkpoint.pt`` (after each finished epoch)
and no ``metrics.json``.
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import AbcnError, CheckpointError, UsageError
from . import rundir
from .checkpoint import (
    FORMAT_VERSION,
    TRAIN_STATE_FORMAT,
    atomic_save,
    load_state,
    materialise,
    model_payload,
    read_checkpoint,
    save_model,
)
from .config import STOCK_MODELS, TrainConfig
from .determinism import deterministic, epoch_seed, rng_state, seed_everything, set_rng_state
from .distributed import DistContext, barrier, broadcast_object, setup, teardown
from .export_check import measure_export
from .loop import (
    EpochStats,
    Progress,
    evaluate,
    make_optimizer,
    DistillationLoss,
    cross_entropy_loss,
    make_scheduler,
    reestimate_batchnorm,
    steps_per_epoch,
    tensor_dataset,
    train_epoch,
    train_loader,
)

#: the fields a resumed run must share with the run it continues
IDENTITY_FIELDS = ("model", "dataset", "weight_bases", "act_bases", "scale_grid", "scale_bits", "epochs",
                   "batch_size", "lr", "seed", "limit_train", "limit_test", "teacher", "kd_weight",
                   "kd_temperature", "warmup_epochs", "bn_reestimate")
#: recipe fields added after the first checkpoint format: a checkpoint without them ran with these
RECIPE_DEFAULTS = {"teacher": None, "kd_weight": TrainConfig.kd_weight, "kd_temperature": TrainConfig.kd_temperature,
                   "warmup_epochs": 0, "bn_reestimate": 0}


@dataclass
class RunResult:
    """What :func:`train_run` hands back (on every process; ``metrics`` only on rank 0)."""

    model: nn.Module
    run_dir: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    rank: int = 0
    world_size: int = 1


@dataclass
class _Plan:
    """Everything checked and loaded before the run directory is touched."""

    cfg: TrainConfig
    dataset: Any
    model: nn.Module
    out_state: rundir.OutState
    resume_state: dict[str, Any] | None = None
    teacher: nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    resume_commands: list[list[str]] = field(default_factory=list)
    before_bn_reestimate: float | None = None


# -- model / dataset resolution --------------------------------------------------------------------

def resolve_model_name(name: str) -> tuple[str, str]:
    """(zoo name, default dataset) of ``--model`` (a zoo model or a stock baseline such as
    ``lenet-stock``); UsageError listing the valid names otherwise."""
    from ..models import MODELS

    if name in STOCK_MODELS:
        return STOCK_MODELS[name], MODELS[STOCK_MODELS[name]].default_dataset
    if name not in MODELS:
        valid = list(MODELS) + list(STOCK_MODELS)
        raise UsageError(f"unknown model {name!r}", where="--model", fix=f"valid models: {', '.join(valid)}")
    return name, MODELS[name].default_dataset


def build_seeded_model(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int = 10) -> nn.Module:
    """The run's initial model: the global RNGs seeded with ``cfg.seed``, then the model built
    (so every process, and every test reference, starts from the same weights)."""
    from ..models import build_model, build_stock_binary_model

    seed_everything(cfg.seed)
    zoo_name, _ = resolve_model_name(cfg.model)
    if cfg.stock:
        return build_stock_binary_model(zoo_name, num_classes, input_shape=tuple(input_shape))
    return build_model(zoo_name, cfg.weight_bases, cfg.act_bases, scale_grid=cfg.scale_grid,
                       scale_bits=cfg.scale_bits, num_classes=num_classes, input_shape=tuple(input_shape))


def load_data(cfg: TrainConfig):
    """The dataset of the run (``--dataset`` or the model's default)."""
    from ..data import load_dataset

    return load_dataset(cfg.dataset, cfg.data_dir, limit_train=cfg.limit_train, limit_test=cfg.limit_test)


def _bundled_note(cfg: TrainConfig, dataset) -> str | None:
    if cfg.data_dir is None and dataset.name == "mnist":
        return f"note: using the {dataset.source}; pass --data-dir DIR for the full MNIST"
    return None


def _exactness_note(model: nn.Module) -> str | None:
    """One line when the configuration already rules out a provably bit-exact export (before
    training; the trained scales are checked again at export)."""
    from ..models.exactness import decided_failures, planned_exactness

    bad = decided_failures(planned_exactness(model))
    if not bad:
        return None
    more = f" and {len(bad) - 1} more layer(s)" if len(bad) > 1 else ""
    return (f"note: the export cannot be proven bit-exact: layer {bad[0].layer}{more} ({bad[0].reason}); "
            "the trained scales are checked again at export")


# -- resume ------------------------------------------------------------------------------------------

def saved_train_config(run_dir: str | Path) -> dict[str, Any]:
    """The options an unfinished run was started with (from its ``checkpoint.pt``)."""
    path = Path(run_dir) / rundir.CHECKPOINT_FILE
    if not path.exists():
        raise CheckpointError("nothing to resume: the run directory has no checkpoint.pt", str(run_dir),
                              "a run leaves checkpoint.pt after its first finished epoch; start it without --resume")
    state = read_checkpoint(path, formats=(TRAIN_STATE_FORMAT,))
    saved = state.get("train_config")
    if not isinstance(saved, dict):
        raise CheckpointError("checkpoint.pt lacks the training options", str(path))
    return saved


def _check_resume_matches(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    diffs = []
    for name in IDENTITY_FIELDS:
        mine = cfg.effective_lr if name == "lr" else getattr(cfg, name)
        if name == "teacher":
            mine = _teacher_id(cfg)
        theirs = saved.get(name, RECIPE_DEFAULTS.get(name))
        if name == "lr" and theirs is None:
            continue
        if mine != theirs:
            diffs.append(f"--{name.replace('_', '-')} {mine} (run has {theirs})")
    if diffs:
        raise UsageError("--resume options differ from the run being resumed: " + ", ".join(diffs),
                         where=str(cfg.out), fix="drop those options (they are taken from the checkpoint) or use --force")


def _load_resume_state(cfg: TrainConfig) -> dict[str, Any]:
    path = cfg.out / rundir.CHECKPOINT_FILE
    state = read_checkpoint(path, formats=(TRAIN_STATE_FORMAT,))
    for key in ("epoch", "optimizer", "scheduler", "history", "train_config"):
        if key not in state:
            raise CheckpointError(f"checkpoint.pt lacks {key!r}", str(path), "start over with --force")
    _check_resume_matches(cfg, state["train_config"])
    if not 1 <= int(state["epoch"]) < cfg.epochs + 1:
        raise CheckpointError(f"checkpoint.pt is at epoch {state['epoch']} of {cfg.epochs}", str(path))
    return state


# -- teacher (knowledge distillation) ------------------------------------------------------------------

def _teacher_id(cfg: TrainConfig) -> str | None:
    return None if cfg.teacher is None else str(Path(cfg.teacher).resolve())


def load_teacher(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module | None:
    """The ``--teacher`` run's trained model (eval mode), checked against the run's data."""
    if cfg.teacher is None:
        return None
    from .checkpoint import input_shape_of, load_checkpoint

    run = Path(cfg.teacher)
    path = run / rundir.MODEL_FILE if run.is_dir() else run
    if not path.is_file():
        raise CheckpointError("the teacher is not a finished run (no model.pt)", str(run),
                              "pass --teacher RUN_DIR of a finished 'abcn-hw train' run, e.g. the float "
                              "reference (--weight-bases float --act-bases float) on the same dataset")
    teacher = load_checkpoint(path)
    shape = input_shape_of(teacher)
    classes = getattr(teacher, "num_classes", None)
    if (shape is not None and tuple(shape) != tuple(input_shape)) or (classes is not None and classes != num_classes):
        raise UsageError(f"the teacher takes input {shape} with {classes} classes; this run's data is "
                         f"{tuple(input_shape)} with {num_classes} classes", where=f"--teacher {run}",
                         fix="distil from a run trained on the same dataset")
    return teacher


# -- planning (all checks; nothing written) ------------------------------------------------------------

def _check_out(cfg: TrainConfig) -> rundir.OutState:
    state = rundir.inspect_out(cfg.out)
    S = rundir.OutState
    from ..errors import OutputPathError

    if state is S.FINISHED and not cfg.force:
        if cfg.resume:
            raise OutputPathError("--out holds a finished run: nothing to resume", str(cfg.out),
                                  "pass --force (without --resume) to retrain it, or choose another --out")
        raise OutputPathError("--out already holds a finished run", str(cfg.out),
                              "pass --force to overwrite it, or choose another --out")
    if state is S.UNFINISHED and not (cfg.resume or cfg.force):
        raise OutputPathError("--out holds an unfinished run", str(cfg.out),
                              "pass --resume to continue it, or --force to start over")
    if state is S.FOREIGN and not cfg.force:
        raise OutputPathError("--out exists and is not empty (not an abcn-hw run directory)", str(cfg.out),
                              "choose a new or empty directory, or pass --force to write into it")
    if cfg.resume and state is not S.UNFINISHED:
        saved_train_config(cfg.out)  # raises the 'nothing to resume' CheckpointError
    return state


def plan_run(cfg: TrainConfig) -> _Plan:
    """Validate every input and load what the run needs; writes nothing."""
    if cfg.resume and cfg.bn_reestimate is None and (Path(cfg.out) / rundir.CHECKPOINT_FILE).exists():
        # not given: the run's own choice, not today's default (a run started before re-estimation
        # became the default resumes as it began)
        cfg.bn_reestimate = saved_train_config(cfg.out).get("bn_reestimate", RECIPE_DEFAULTS["bn_reestimate"])
    cfg.validate()
    _, default_dataset = resolve_model_name(cfg.model)
    if cfg.dataset is None:
        cfg.dataset = default_dataset
    out_state = _check_out(cfg)
    resume_state = _load_resume_state(cfg) if cfg.resume else None
    dataset = load_data(cfg)
    cfg.dataset = dataset.name
    if len(dataset.train) < 2:
        raise UsageError(f"the training split has {len(dataset.train)} image(s); need at least 2")
    teacher = load_teacher(cfg, dataset.input_shape, dataset.num_classes)
    model = build_seeded_model(cfg, dataset.input_shape, dataset.num_classes)
    notes = [n for n in (_bundled_note(cfg, dataset), _exactness_note(model)) if n]
    return _Plan(cfg, dataset, model, out_state, resume_state, teacher, notes)


# -- training ----------------------------------------------------------------------------------------------

def clip_stock_weights(model: nn.Module) -> None:
    """BNN-PYNQ recipe for the stock Brevitas binary baseline: clip each latent binary weight to
    [-scale, scale] in place after every step (a model may provide ``clip_weights()`` instead)."""
    if hasattr(model, "clip_weights"):
        model.clip_weights()
        return
    from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, QuantWeightBiasInputOutputLayer) and int(m.weight_quant.bit_width()) == 1:
                scale = float(m.quant_weight().scale.max())
                m.weight.clamp_(-scale, scale)


def _train_state(model: nn.Module, optimizer, scheduler, epoch: int, history: list, cfg: TrainConfig,
                 ctx: DistContext, resume_commands: list) -> dict[str, Any]:
    payload = model_payload(model)
    payload.update(format=TRAIN_STATE_FORMAT, version=FORMAT_VERSION, epoch=epoch,
                   optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=rng_state(),
                   history=list(history), train_config=_identity(cfg), world_size=ctx.world_size,
                   resume_commands=list(resume_commands))
    return payload


def _identity(cfg: TrainConfig) -> dict[str, Any]:
    d = {name: getattr(cfg, name) for name in IDENTITY_FIELDS}
    d["lr"] = cfg.effective_lr
    d["teacher"] = _teacher_id(cfg)
    d["command"] = list(cfg.command)
    d["data_dir"] = None if cfg.data_dir is None else str(Path(cfg.data_dir).resolve())
    return d


def _log(ctx: DistContext, cfg: TrainConfig, msg: str) -> None:
    if ctx.is_main and not cfg.quiet:
        print(msg, flush=True)


def _prepare_dir(plan: _Plan, ctx: DistContext) -> bool:
    """Rank 0 creates the run directory; any failure is re-raised on every process."""
    created, err = False, None
    if ctx.is_main:
        try:
            created = rundir.create(plan.cfg.out, force=plan.cfg.force)
        except AbcnError as e:
            err = e
    err = broadcast_object(ctx, err)
    if err is not None:
        raise err
    return created


def _fit(plan: _Plan, ctx: DistContext) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The epoch loop (resuming from ``plan.resume_state`` if given); returns the unwrapped model."""
    cfg, model = plan.cfg, plan.model
    stock = cfg.stock
    model.to(ctx.device)
    materialise(model, tuple(plan.dataset.input_shape))
    train_ds = tensor_dataset(plan.dataset.train)
    steps = steps_per_epoch(len(train_ds), cfg.batch_size, ctx)
    optimizer = make_optimizer(model, cfg.effective_lr)
    scheduler = make_scheduler(optimizer, steps * cfg.epochs, warmup_steps=steps * cfg.warmup_epochs)
    loss_fn = cross_entropy_loss
    if plan.teacher is not None:
        loss_fn = DistillationLoss(plan.teacher.to(ctx.device), cfg.kd_weight, cfg.kd_temperature)
    start_epoch, history, resume_commands = 0, [], []
    if plan.resume_state is not None:
        st = plan.resume_state
        load_state(model, st["state_dict"], str(cfg.out / rundir.CHECKPOINT_FILE))
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        if "rng" in st:
            set_rng_state(st["rng"])
        start_epoch, history = int(st["epoch"]), list(st["history"])
        resume_commands = list(st.get("resume_commands", [])) + [list(cfg.command)]
        if st.get("world_size", 1) != ctx.world_size:
            _log(ctx, cfg, f"note: resuming a {st.get('world_size')}-process run with {ctx.world_size} process(es); "
                           "batches differ from an uninterrupted run")
        _log(ctx, cfg, f"resuming after epoch {start_epoch}/{cfg.epochs}")
    net = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch, ctx.rank))
        t0 = time.perf_counter()
        loader = train_loader(train_ds, cfg.batch_size, cfg.seed, epoch, ctx)
        bar = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", enabled=ctx.is_main and not cfg.quiet)
        try:
            loss, train_acc = train_epoch(net, loader, optimizer, scheduler, ctx, bar,
                                          post_step=(lambda: clip_stock_weights(model)) if stock else None,
                                          loss_fn=loss_fn)
        finally:
            bar.close()
        test_acc = evaluate(model, plan.dataset.test) if ctx.is_main else float("nan")
        stats = EpochStats(epoch + 1, loss, train_acc, test_acc, float(scheduler.get_last_lr()[0]),
                           time.perf_counter() - t0)
        history.append(stats.to_json())
        if ctx.is_main:
            atomic_save(_train_state(model, optimizer, scheduler, epoch + 1, history, cfg, ctx, resume_commands),
                        cfg.out / rundir.CHECKPOINT_FILE)
        _log(ctx, cfg, f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, train {100 * train_acc:.2f}%, "
                       f"test {100 * test_acc:.2f}% ({stats.seconds:.1f} s)")
        barrier(ctx)
    plan.resume_commands = resume_commands
    return model, history


def _finish(plan: _Plan, model: nn.Module, history: list[dict[str, Any]], ctx: DistContext,
            t_start: float) -> dict[str, Any]:
    """Rank 0: model.pt, model.onnx, then metrics.json (last: it marks the run finished)."""
    from ..models.exactness import export_exactness
    from ..qonnx_export import export_to_qonnx

    cfg, test = plan.cfg, plan.dataset.test
    out = cfg.out
    model.cpu()
    plan.before_bn_reestimate = None
    if cfg.bn_reestimate:
        plan.before_bn_reestimate = history[-1]["test_accuracy"] if history else None
        with deterministic(torch.device("cpu")):
            seed_everything(epoch_seed(cfg.seed, cfg.epochs))
            loader = train_loader(tensor_dataset(plan.dataset.train), cfg.batch_size, cfg.seed, cfg.epochs,
                                  DistContext())
            used = reestimate_batchnorm(model, loader, cfg.bn_reestimate, torch.device("cpu"))
        _log(ctx, cfg, f"batch norm re-estimated from {used} training batches")
    model.eval()
    save_model(model, out / rundir.MODEL_FILE)
    export_to_qonnx(model, tuple(plan.dataset.input_shape), out / rundir.ONNX_FILE)
    report = measure_export(model, out / rundir.ONNX_FILE, test.images, test.labels)
    exactness = export_exactness(model)
    metrics = _metrics(plan, model, history, report, exactness, ctx, time.perf_counter() - t_start)
    rundir.write_json_atomic(metrics, out / rundir.METRICS_FILE)
    _log(ctx, cfg, f"test accuracy {100 * metrics['test_accuracy']:.2f}% (PyTorch), "
                   f"{100 * metrics['export_test_accuracy']:.2f}% (executed QONNX export)")
    _log(ctx, cfg, report.fidelity.summary())
    if not exactness.exact:
        print(f"note: the export is {exactness.summary()}; its float32 sums round in each kernel's order, "
              "so it matches PyTorch only within a tolerance (export_fidelity in metrics.json)", file=sys.stderr)
    elif report.fidelity.equal_fraction != 1.0:
        print(f"warning: every layer is provably exact, yet the export differs from PyTorch: "
              f"{report.fidelity.summary()}", file=sys.stderr)
    if not report.fidelity.ok:
        print(f"warning: the export does not reproduce the PyTorch model exactly: {report.fidelity.summary()}",
              file=sys.stderr)
    _log(ctx, cfg, f"wrote {out / rundir.MODEL_FILE}, {out / rundir.ONNX_FILE}, {out / rundir.METRICS_FILE}")
    return metrics


def _metrics(plan: _Plan, model: nn.Module, history: list, report, exactness, ctx: DistContext,
             wall: float) -> dict[str, Any]:
    cfg, ds = plan.cfg, plan.dataset
    mc = model.config
    command = list(cfg.command)
    if plan.resume_state is not None:
        command = list(plan.resume_state["train_config"].get("command", command))
    return {
        "model": cfg.model,
        "dataset": ds.name,
        "dataset_source": ds.source,
        "data_dir": None if cfg.data_dir is None else str(Path(cfg.data_dir).resolve()),
        "weight_bases": mc["weight_bases"],
        "act_bases": mc["act_bases"],
        "scale_grid": mc["scale_grid"],
        "scale_bits": mc["scale_bits"],
        "input_shape": list(ds.input_shape),
        "num_classes": ds.num_classes,
        "train_images": len(ds.train),
        "test_images": len(ds.test),
        "limit_train": cfg.limit_train,
        "limit_test": cfg.limit_test,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "lr": cfg.effective_lr,
        "optimizer": "adam",
        "lr_schedule": (f"linear warm-up over {cfg.warmup_epochs} epoch(s), then " if cfg.warmup_epochs else "")
        + "cosine (per step, to 0)",
        "recipe": {"teacher": _teacher_id(cfg), "kd_weight": cfg.kd_weight if cfg.teacher else None,
                   "kd_temperature": cfg.kd_temperature if cfg.teacher else None,
                   "warmup_epochs": cfg.warmup_epochs, "bn_reestimate_batches": cfg.bn_reestimate},
        "test_accuracy_before_bn_reestimate": getattr(plan, "before_bn_reestimate", None),
        "test_accuracy": report.model_accuracy,
        "export_test_accuracy": report.accuracy,
        "export_fidelity": report.fidelity_json(),
        "export_bit_exact": exactness.exact,
        "export_exactness": exactness.to_json(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "train_seconds": sum(h["seconds"] for h in history),
        "wall_seconds": wall,
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "command": command,
        "resume_commands": plan.resume_commands,
        "versions": {"abcn_hw": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "files": {"model": rundir.MODEL_FILE, "qonnx": rundir.ONNX_FILE, "checkpoint": rundir.CHECKPOINT_FILE},
    }


def train_run(cfg: TrainConfig) -> RunResult:
    """Run ``cfg`` end to end (see module docstring). Raises AbcnError subclasses for user errors
    (before anything is written) and lets KeyboardInterrupt through (the last finished epoch
    stays in ``checkpoint.pt`` for ``--resume``)."""
    t_start = time.perf_counter()
    plan = plan_run(cfg)
    ctx = setup(cfg.device)
    created = False
    try:
        if cfg.batch_size % ctx.world_size:
            raise UsageError(f"--batch-size {cfg.batch_size} is not divisible by the {ctx.world_size} processes",
                             fix="--batch-size is the global batch; make it a multiple of the process count")
        if ctx.is_main:
            for note in plan.notes:
                print(note, file=sys.stderr, flush=True)
        created = _prepare_dir(plan, ctx)
        with deterministic(ctx.device):
            model, history = _fit(plan, ctx)
        metrics = _finish(plan, model, history, ctx, t_start) if ctx.is_main else None
        model.cpu().eval()
        return RunResult(model, cfg.out, history, metrics, ctx.rank, ctx.world_size)
    except BaseException:
        if created and ctx.is_main:
            rundir.remove_if_abandoned(cfg.out)
        raise
    finally:
        teardown(ctx)
