"""Training: the deterministic, resumable (and DDP-capable) loop, evaluation and checkpoints.

    from abcn_hw.train import TrainConfig, train_run, load_checkpoint, evaluate
    result = train_run(TrainConfig(model="lenet", weight_bases=3, act_bases=3, epochs=5, out="runs/l33"))
    model = load_checkpoint("runs/l33/model.pt")
"""
from .checkpoint import (
    FORMAT_VERSION,
    MODEL_FORMAT,
    TRAIN_STATE_FORMAT,
    load_checkpoint,
    model_payload,
    read_checkpoint,
    save_model,
)
from .config import (
    DEFAULT_BN_REESTIMATE,
    DEFAULT_LR,
    STOCK_MODELS,
    TrainConfig,
    default_bn_reestimate,
    default_lr,
    parse_bases,
)
from .determinism import deterministic, epoch_seed, seed_everything
from .distributed import DistContext
from .export_check import ExportReport, measure_export
from .loop import evaluate, make_optimizer, make_scheduler, predict, train_epoch, train_loader
from .rundir import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE, read_metrics
from .session import RunResult, build_seeded_model, plan_run, resolve_model_name, saved_train_config, train_run

__all__ = [
    "CHECKPOINT_FILE", "DEFAULT_BN_REESTIMATE", "DEFAULT_LR", "DistContext", "ExportReport", "FORMAT_VERSION",
    "METRICS_FILE", "MODEL_FILE", "MODEL_FORMAT", "ONNX_FILE", "RunResult", "STOCK_MODELS", "TRAIN_STATE_FORMAT",
    "TrainConfig", "build_seeded_model", "default_bn_reestimate", "default_lr", "deterministic", "epoch_seed",
    "evaluate", "load_checkpoint",
    "make_optimizer", "make_scheduler", "measure_export", "model_payload", "parse_bases", "plan_run", "predict",
    "read_checkpoint", "read_metrics", "resolve_model_name", "save_model", "saved_train_config", "seed_everything",
    "train_epoch", "train_loader", "train_run",
]
