"""The training engine: data loaders, one epoch of Adam + (warm-up +) cosine LR + cross-entropy or
distillation from a teacher, batch-norm re-estimation, evaluation.

Deterministic for a fixed seed: batches come from a sampler seeded with ``(seed, epoch)``, the
global RNGs are reseeded at every epoch boundary, and data loading runs in-process
(``num_workers=0``). Under DDP a :class:`~torch.utils.data.DistributedSampler` with the same seed
shards every epoch's permutation over the processes.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from .determinism import epoch_seed
from .distributed import DistContext, all_reduce_sum


@dataclass
class EpochStats:
    """One finished epoch (what ``history`` records)."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tensor_dataset(split) -> torch.utils.data.TensorDataset:
    """A Split (images float32 N x C x H x W, labels int64) as a TensorDataset."""
    from ..data import to_tensor_dataset

    return to_tensor_dataset(split)


def train_loader(dataset, batch_size: int, seed: int, epoch: int, ctx: DistContext) -> DataLoader:
    """Shuffled batches for ``epoch`` (whole batches fetched with one tensor index each).

    ``batch_size`` is global; each of the ``ctx.world_size`` processes gets ``batch_size / W``.
    The last partial batch is dropped unless it is the only one."""
    local_batch = batch_size // ctx.world_size
    if ctx.distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        n_local = len(sampler)
    else:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        sampler = RandomSampler(dataset, generator=generator)
        n_local = len(dataset)
    batches = BatchSampler(sampler, local_batch, drop_last=n_local >= local_batch)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0,
                      generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, ctx.rank)))


def eval_loader(dataset, batch_size: int) -> DataLoader:
    batches = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=0)


def _module_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def predict(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Eval-mode logits (float32 numpy) for a batch of images; the model's mode is restored."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    was_training = model.training
    model.eval()
    device = _module_device(model)
    outs = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                outs.append(model(x[start:start + batch_size].to(device)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, split, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` in eval mode on ``split``."""
    if len(split) == 0:
        return float("nan")
    logits = predict(model, split.images, batch_size)
    return float((logits.argmax(-1) == np.asarray(split.labels)).mean())


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam over the trainable parameters (no weight decay: it fights the binary bases)."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)


class WarmupCosine:
    """lr factor at step k: linear ramp (k + 1) / W over the first W steps, then cosine decay from 1
    to 0 over the remaining steps. A class (not a lambda) so the scheduler's state is picklable."""

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps, self.total_steps = int(warmup_steps), max(int(total_steps), int(warmup_steps) + 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        done = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                   warmup_steps: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay from the initial lr to 0 over all steps of the run (stepped per batch), after a
    linear warm-up over the first ``warmup_steps`` steps if any."""
    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=0.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps))


def cross_entropy_loss(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The plain training loss (signature shared with :class:`DistillationLoss`)."""
    return F.cross_entropy(logits, y)


class DistillationLoss:
    """(1 - w) * CE(student, y) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    The teacher (a trained model, e.g. the float reference of the same topology) runs in eval mode
    without gradients on the same batch; T^2 keeps the soft term's gradient scale independent of T
    (Hinton et al., 2015)."""

    def __init__(self, teacher: nn.Module, weight: float, temperature: float):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.weight, self.temperature = float(weight), float(temperature)

    def soft_loss(self, logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        return F.kl_div(F.log_softmax(logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                        reduction="batchmean", log_target=True) * (t * t)

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        soft = self.soft_loss(logits, teacher_logits)
        if self.weight >= 1.0:
            return soft
        return (1.0 - self.weight) * F.cross_entropy(logits, y) + self.weight * soft


def batchnorm_modules(model: nn.Module) -> list[nn.Module]:
    """Every batch-norm layer (ours and torch's) of ``model``."""
    from ..nn import ABCBatchNorm

    return [m for m in model.modules() if isinstance(m, (ABCBatchNorm, nn.modules.batchnorm._BatchNorm))]


def reestimate_batchnorm(model: nn.Module, loader, batches: int, device: torch.device) -> int:
    """Recompute every batch-norm's running mean/variance with the trained weights fixed: reset
    them, then average the batch statistics of up to ``batches`` batches of ``loader`` (train-mode
    forwards without gradients, equal weight per batch). Returns the number of batches used."""
    bns = batchnorm_modules(model)
    if not bns or batches <= 0:
        return 0
    saved = [m.momentum for m in bns]
    was_training = model.training
    model.train()
    used = 0
    try:
        for m in bns:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
        with torch.no_grad():
            for x, _ in loader:
                for m in bns:
                    m.momentum = 1.0 / (used + 1)  # running = mean of the first used + 1 batch statistics
                model(x.to(device))
                used += 1
                if used >= batches:
                    break
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.train(was_training)
    return used


def steps_per_epoch(n_train: int, batch_size: int, ctx: DistContext) -> int:
    """Number of optimizer steps in one epoch (matches :func:`train_loader`)."""
    local_batch = batch_size // ctx.world_size
    n_local = -(-n_train // ctx.world_size) if ctx.distributed else n_train
    return n_local // local_batch if n_local >= local_batch else 1


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scheduler, ctx: DistContext, progress: Callable[[int, float, float], None] | None = None,
                post_step: Callable[[], None] | None = None,
                loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss,
                ) -> tuple[float, float]:
    """One pass over ``loader`` in train mode; returns (mean loss, train accuracy) over all processes.

    ``post_step()`` runs after every optimizer step (e.g. weight clipping); ``progress(step, loss,
    accuracy)`` after each batch (rank-local running values); ``loss_fn(logits, x, y)`` is the
    training loss (cross-entropy, or :class:`DistillationLoss`)."""
    model.train()
    device = ctx.device
    loss_sum = correct = seen = 0.0
    for step, (x, y) in enumerate(loader, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, x, y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if post_step is not None:
            post_step()
        n = int(y.shape[0])
        loss_sum += float(loss.detach()) * n
        correct += float((logits.detach().argmax(-1) == y).sum())
        seen += n
        if progress is not None:
            progress(step, loss_sum / seen, correct / seen)
    loss_sum, correct, seen = all_reduce_sum(ctx, [loss_sum, correct, seen])
    return loss_sum / max(seen, 1), correct / max(seen, 1)


class Progress:
    """tqdm bar for one epoch on stderr (rank 0, when stderr is a terminal and not quiet)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                            unit="batch")
        self.start = time.perf_counter()

    def __call__(self, step: int, loss: float, acc: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * acc:.2f}%", refresh=False)
            self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
