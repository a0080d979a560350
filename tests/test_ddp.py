"""Scale-out: ``torchrun --nproc_per_node=2 -m abcn_hw.cli train`` trains one DDP model.

The test launches this file under torchrun; each worker runs the real CLI (``abcn_hw.cli.main``)
and, through a thin wrapper around ``abcn_hw.train.train_run``, dumps its final parameters. The
test then checks that

* both ranks end with bit-identical parameters;
* they equal a single-process reference that replays the same steps: each rank's shard of every
  global batch (DistributedSampler with the run's seed, built here independently of the
  library), gradients of the two shards averaged, one Adam + cosine step;
* the reference really discriminates: training on rank 0's shard alone gives other weights;
* only rank 0 wrote the run directory and printed progress.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
OPTIONS = dict(model="tfc", weight_bases=2, act_bases=2, epochs=1, batch_size=64, limit_train=256,
               limit_test=64, seed=7, lr=5e-3)


def _cli_argv(out: Path) -> list[str]:
    argv = ["train"]
    for k, v in OPTIONS.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return argv + ["--device", "cpu", "--out", str(out)]


def _worker(dump: Path, out: Path) -> int:
    """Runs under torchrun: the real CLI, plus a dump of this rank's final state."""
    import abcn_hw.train as train_pkg
    from abcn_hw.cli import main

    real = train_pkg.train_run

    def recording(cfg):
        result = real(cfg)
        torch.save({"params": {k: v.detach().clone() for k, v in result.model.named_parameters()},
                    "buffers": {k: v.detach().clone() for k, v in result.model.named_buffers()},
                    "world_size": result.world_size},
                   dump / f"rank{result.rank}.pt")
        return result

    train_pkg.train_run = recording
    return main(_cli_argv(out))


def _set_buffers(model: torch.nn.Module, values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, buf in model.named_buffers():
            buf.copy_(values[name])


def _reference(average: bool) -> dict[str, torch.Tensor]:
    """Single-process replay of the DDP run (``average=False``: rank 0's shard only)."""
    import torch.nn.functional as F
    from torch.utils.data import BatchSampler, DistributedSampler

    from abcn_hw.data import load_dataset, to_tensor_dataset
    from abcn_hw.train import TrainConfig, build_seeded_model, make_optimizer, make_scheduler
    from abcn_hw.train.checkpoint import materialise

    cfg = TrainConfig(out=Path("unused"), **OPTIONS).validate()
    data = load_dataset("mnist", limit_train=cfg.limit_train, limit_test=cfg.limit_test)
    ds = to_tensor_dataset(data.train)
    model = build_seeded_model(cfg, data.input_shape)
    materialise(model, data.input_shape)
    local = cfg.batch_size // WORLD
    shards = []
    for rank in range(WORLD):
        sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(0)
        shards.append(list(BatchSampler(sampler, local, drop_last=True)))
    steps = len(shards[0])
    optimizer = make_optimizer(model, cfg.lr)
    scheduler = make_scheduler(optimizer, steps * cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for step in range(steps):
        start_buffers = {k: v.clone() for k, v in model.named_buffers()}
        grads, rank0_buffers = [], None
        for rank in range(WORLD if average else 1):
            _set_buffers(model, start_buffers)  # DDP broadcasts rank 0's buffers before each forward
            optimizer.zero_grad(set_to_none=True)
            x, y = ds[shards[rank][step]]
            F.cross_entropy(model(x), y).backward()
            grads.append([p.grad.clone() for p in params])
            if rank == 0:
                rank0_buffers = {k: v.clone() for k, v in model.named_buffers()}
        _set_buffers(model, rank0_buffers)
        for i, p in enumerate(params):
            p.grad = sum(g[i] / len(grads) for g in grads)
        optimizer.step()
        scheduler.step()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not available")
    tmp = tmp_path_factory.mktemp("ddp")
    dump, out = tmp / "dump", tmp / "run"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(Path(__file__).resolve()), str(dump), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    return proc, ranks, out


def test_ranks_agree_and_match_averaged_gradient_reference(ddp_run):
    _, ranks, _ = ddp_run
    assert [r["world_size"] for r in ranks] == [WORLD, WORLD]
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), f"ranks disagree on {k}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run single-threaded: same reduction order
    try:
        ref = _reference(average=True)
        rank0_only = _reference(average=False)
    finally:
        torch.set_num_threads(threads)
    for k in ref:
        assert torch.allclose(p0[k], ref[k], rtol=0, atol=1e-6), f"{k}: DDP differs from the averaged-gradient reference"
    assert any(not torch.allclose(p0[k], rank0_only[k], rtol=0, atol=1e-4) for k in ref), \
        "the reference does not discriminate (one shard gives the same weights)"


def test_only_rank0_writes_and_prints(ddp_run):
    proc, ranks, out = ddp_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and metrics["train_images"] == OPTIONS["limit_train"]
    saved = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    for k, v in ranks[0]["params"].items():
        assert torch.equal(saved[k], v)
    assert proc.stdout.count("epoch 1/1:") == 1
    assert proc.stderr.count("bundled MNIST subset") == 1
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1]), Path(sys.argv[2])))
