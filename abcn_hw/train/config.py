"""Training configuration: one validated record of everything a run depends on.

:func:`TrainConfig.validate` checks every user-controlled value (names, ranges, paths) and raises
:class:`~abcn_hw.errors.UsageError` before any work starts; nothing is loaded or written here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import UsageError

#: weight_bases / act_bases: an integer 1..MAX_BASES or "float" (full precision)
Bases = Union[int, str]
MAX_BASES = 8
SCALE_GRIDS = ("fixed", "pow2", "float")
DEVICES = ("auto", "cpu", "cuda")
#: models trained with the Brevitas stock binary layers instead of ABC layers: CLI name -> zoo name
STOCK_MODELS = {"lenet-stock": "lenet"}
#: default Adam learning rate. 5e-3 suits the binary nets (their latent weights need large steps to
#: flip a sign) and, with the cosine decay, also beat 1e-3 for the float references in short runs
#: (lenet on the bundled MNIST subset, 3 epochs: ABC M=N=2 96.8% vs 94.9%, float 97.5% vs 95.9%)
DEFAULT_LR = 5e-3


def parse_bases(value: Any, flag: str) -> Bases:
    """``"float"`` or an integer 1..8 (also accepted as a string); UsageError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("float", "fp", "fp32"):
            return "float"
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{flag} must be an integer 1..{MAX_BASES} or 'float', got {value!r}",
                             fix=f"pass e.g. {flag} 3, or {flag} float for full precision") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BASES:
        raise UsageError(f"{flag} must be an integer 1..{MAX_BASES} or 'float', got {value!r}",
                         fix=f"pass e.g. {flag} 3, or {flag} float for full precision")
    return value


def default_lr(weight_bases: Bases | None, act_bases: Bases | None) -> float:
    """Adam step size used when ``--lr`` is not given (the same for every kind of model today)."""
    return DEFAULT_LR


#: training batches batch norm is re-estimated from after training when ``--bn-reestimate`` is not
#: given (ABC and float models). Chosen by evidence (README, "Accuracy on full Fashion-MNIST"): it
#: raised every ABC run of the baseline recipe and the float run, and lowered the stock binary runs.
DEFAULT_BN_REESTIMATE = 50


def default_bn_reestimate(model: str) -> int:
    """``--bn-reestimate`` when not given: :data:`DEFAULT_BN_REESTIMATE` for ABC and float models,
    0 (off) for the stock binary baselines (``lenet-stock``), whose accuracy it lowered."""
    return 0 if model in STOCK_MODELS else DEFAULT_BN_REESTIMATE


@dataclass
class TrainConfig:
    """Everything one training run depends on (what ``abcn-hw train`` parses its options into).

    ``weight_bases`` / ``act_bases`` are ``None`` only for stock binary models (``lenet-stock``).
    ``batch_size`` is the global batch: under ``torchrun`` each of the W processes sees
    ``batch_size / W`` images per step, so the same options train the same way at any scale.
    ``lr=None`` picks :func:`default_lr`; ``dataset=None`` picks the model's default dataset.

    Recipe options (see the README's Fashion-MNIST study for what each is worth; only batch-norm
    re-estimation is on by default, where it won):
    ``teacher`` is a finished run directory whose ``model.pt`` is distilled into this model: the loss
    is ``(1 - kd_weight) * CE(student, y) + kd_weight * T^2 * KL(teacher_T || student_T)`` with
    temperature ``T = kd_temperature``. ``warmup_epochs`` ramps the learning rate linearly from 0
    over that many epochs before the cosine decay. ``bn_reestimate`` > 0 recomputes every batch-norm's
    running statistics after training from that many training batches (weights fixed); ``0`` turns it
    off; ``None`` picks :func:`default_bn_reestimate` (:data:`DEFAULT_BN_REESTIMATE` for ABC and float
    models, 0 for the stock binary baselines) when the config is validated.
    """

    model: str
    out: Path
    weight_bases: Bases | None = None
    act_bases: Bases | None = None
    dataset: str | None = None
    data_dir: Path | None = None
    scale_grid: str = "fixed"
    scale_bits: int = 4
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None
    seed: int = 0
    teacher: Path | None = None
    kd_weight: float = 0.9
    kd_temperature: float = 1.0
    warmup_epochs: int = 0
    bn_reestimate: int | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    device: str = "auto"
    resume: bool = False
    force: bool = False
    quiet: bool = False
    command: list[str] = field(default_factory=list)

    @property
    def stock(self) -> bool:
        """True for a Brevitas stock binary baseline (no ABC bases)."""
        return self.model in STOCK_MODELS

    def validate(self) -> TrainConfig:
        """Check every field; normalises bases/paths in place and returns ``self``."""
        self.out = _path(self.out, "--out")
        if self.data_dir is not None:
            self.data_dir = _path(self.data_dir, "--data-dir")
        if self.stock:
            for flag, v in (("--weight-bases", self.weight_bases), ("--act-bases", self.act_bases)):
                if v is not None:
                    raise UsageError(f"{flag} does not apply to the stock binary model {self.model!r}",
                                     fix=f"drop {flag}; {self.model} always has 1-bit weights and activations")
        else:
            for flag, attr in (("--weight-bases", "weight_bases"), ("--act-bases", "act_bases")):
                v = getattr(self, attr)
                if v is None:
                    raise UsageError(f"{flag} is required", fix=f"pass {flag} M with M in 1..{MAX_BASES}, or float")
                setattr(self, attr, parse_bases(v, flag))
        if self.scale_grid not in SCALE_GRIDS:
            raise UsageError(f"unknown scale grid {self.scale_grid!r}", where="--scale-grid",
                             fix=f"use one of: {', '.join(SCALE_GRIDS)}")
        _positive_int(self.scale_bits, "--scale-bits", upper=16)
        _positive_int(self.epochs, "--epochs")
        _positive_int(self.batch_size, "--batch-size")
        for flag, v in (("--limit-train", self.limit_train), ("--limit-test", self.limit_test)):
            if v is not None:
                _positive_int(v, flag)
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not math.isfinite(self.lr) or self.lr <= 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr!r}", fix="pass e.g. --lr 0.005")
        if self.teacher is not None:
            self.teacher = _path(self.teacher, "--teacher")
        for flag, v, lo, hi in (("--kd-weight", self.kd_weight, 0.0, 1.0),
                                ("--kd-temperature", self.kd_temperature, 1e-3, 100.0)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise UsageError(f"{flag} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        for flag, v, default in (("--kd-weight", self.kd_weight, TrainConfig.kd_weight),
                                 ("--kd-temperature", self.kd_temperature, TrainConfig.kd_temperature)):
            if self.teacher is None and v != default:
                raise UsageError(f"{flag} needs a teacher", fix="pass --teacher RUN_DIR (e.g. a finished float run)")
        if self.bn_reestimate is None:
            self.bn_reestimate = default_bn_reestimate(self.model)
        for flag, v, example in (("--warmup-epochs", self.warmup_epochs, "1 (epochs)"),
                                 ("--bn-reestimate", self.bn_reestimate,
                                  f"{DEFAULT_BN_REESTIMATE} (training batches)")):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"{flag} must be an integer >= 0, got {v!r}",
                                 fix=f"pass e.g. {flag} {example}, or {flag} 0 to turn it off")
        if self.warmup_epochs >= self.epochs:
            raise UsageError(f"--warmup-epochs {self.warmup_epochs} leaves no epoch for the cosine decay "
                             f"(--epochs {self.epochs})", fix="use fewer warm-up epochs than --epochs")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 31:
            raise UsageError(f"--seed must be an integer 0..2**31-1, got {self.seed!r}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown device {self.device!r}", where="--device", fix=f"use one of: {', '.join(DEVICES)}")
        if self.resume and self.force:
            raise UsageError("--resume and --force contradict each other",
                             fix="use --resume to continue a run, or --force to start it over")
        return self

    @property
    def effective_lr(self) -> float:
        """The learning rate actually used."""
        return float(self.lr) if self.lr is not None else default_lr(self.weight_bases, self.act_bases)

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable record of the options (paths as strings)."""
        d = asdict(self)
        d["out"] = str(self.out)
        d["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        d["teacher"] = None if self.teacher is None else str(self.teacher)
        return d


def _path(value: Any, flag: str) -> Path:
    if value is None or str(value).strip() == "":
        raise UsageError(f"{flag} needs a path")
    return Path(value)


def _positive_int(value: Any, flag: str, upper: int | None = None) -> int:
    ok = not isinstance(value, bool) and isinstance(value, int) and value >= 1 and (upper is None or value <= upper)
    if not ok:
        rng = f"1..{upper}" if upper else ">= 1"
        raise UsageError(f"{flag} must be an integer {rng}, got {value!r}")
    return value
