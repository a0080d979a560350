"""The training recipe options: distillation from a teacher run, warm-up + cosine schedule,
batch-norm re-estimation; each is used when asked for, resumes deterministically and rejects bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from abcn_hw.cli import main as cli_main
from abcn_hw.data import load_dataset
from abcn_hw.errors import CheckpointError, UsageError
from abcn_hw.train import DEFAULT_BN_REESTIMATE, default_bn_reestimate, train_run
from abcn_hw.train import session as session_mod
from abcn_hw.train.loop import DistillationLoss, WarmupCosine, make_scheduler, reestimate_batchnorm
from test_train import _interrupt_at_epoch, state_equal, tiny


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A finished float run of the tiny MLP: the distillation teacher."""
    run = tmp_path_factory.mktemp("teacher") / "t"
    train_run(tiny(run, weight_bases="float", act_bases="float", epochs=2))
    return run


# -- distillation ---------------------------------------------------------------------------------------------

def test_distillation_loss_is_the_weighted_sum():
    torch.manual_seed(0)
    teacher = nn.Linear(6, 4)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 0])
    s = torch.randn(5, 4)
    w, t = 0.7, 3.0
    with torch.no_grad():
        tl = teacher(x)
    p_t = F.softmax(tl / t, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / t, -1))).sum(-1).mean()
    want = (1 - w) * F.cross_entropy(s, y) + w * t * t * kl
    got = DistillationLoss(teacher, w, t)(s, x, y)
    assert torch.allclose(got, want, rtol=1e-6, atol=0)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    # weight 1: the labels play no part
    pure = DistillationLoss(teacher, 1.0, t)
    assert torch.equal(pure(s, x, y), pure(s, x, (y + 1) % 4))


def test_training_uses_the_teacher(tmp_path, teacher, monkeypatch):
    t0 = teacher
    plain = train_run(tiny(tmp_path / "plain"))
    kd0 = train_run(tiny(tmp_path / "kd0", teacher=t0, kd_weight=1.0))
    assert not state_equal(plain.model.state_dict(), kd0.model.state_dict())
    # with kd_weight 1 the labels are unused: scrambled training labels give the same weights (with
    # the cross-entropy on the labels still in the loss, they would not)
    real = session_mod.load_data

    def scrambled(cfg):
        ds = real(cfg)
        ds.train.labels[:] = (ds.train.labels + 3) % 10
        return ds

    monkeypatch.setattr(session_mod, "load_data", scrambled)
    kd0_scrambled = train_run(tiny(tmp_path / "kd0s", teacher=t0, kd_weight=1.0))
    assert state_equal(kd0.model.state_dict(), kd0_scrambled.model.state_dict())
    assert kd0.metrics["recipe"]["teacher"] == str(t0.resolve()) and kd0.metrics["recipe"]["kd_weight"] == 1.0


def test_teacher_errors(tmp_path, teacher, monkeypatch):
    with pytest.raises(CheckpointError, match="not a finished run"):
        train_run(tiny(tmp_path / "a", teacher=tmp_path / "nowhere"))
    real = session_mod.load_data

    def five_classes(cfg):
        ds = real(cfg)
        ds.num_classes = 5
        return ds

    monkeypatch.setattr(session_mod, "load_data", five_classes)
    with pytest.raises(UsageError, match="teacher takes input"):
        train_run(tiny(tmp_path / "b", teacher=teacher))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- schedule ----------------------------------------------------------------------------------------------------

def test_warmup_then_cosine():
    f = WarmupCosine(4, 12)
    assert [f(k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and math.isclose(f(8), 0.5, abs_tol=1e-12) and f(12) == 0.0
    assert all(f(k) > f(k + 1) for k in range(4, 12))
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(opt, 12, warmup_steps=4)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1], abs=1e-15)


# -- batch-norm re-estimation --------------------------------------------------------------------------------

def test_reestimate_batchnorm_averages_batch_statistics():
    torch.manual_seed(0)
    from abcn_hw.nn import ABCBatchNorm

    model = nn.Sequential(nn.Linear(3, 4), ABCBatchNorm(4), nn.Linear(4, 2), nn.BatchNorm1d(2))
    model.eval()
    batches = [(torch.randn(8, 3) * (i + 1) + i, torch.zeros(8)) for i in range(5)]
    used = reestimate_batchnorm(model, batches, 3, torch.device("cpu"))
    assert used == 3 and not model.training
    with torch.no_grad():
        h = [model[0](x) for x, _ in batches[:3]]
        mean = torch.stack([v.mean(0) for v in h]).mean(0)
        var = torch.stack([v.var(0, unbiased=True) for v in h]).mean(0)
        z = [model[2](model[1].weight * (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + 1e-5)
                      + model[1].bias) for v in h]
        mean2 = torch.stack([v.mean(0) for v in z]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(model[1].running_var, var, rtol=1e-5, atol=1e-6)
    assert torch.allclose(model[3].running_mean, mean2, rtol=1e-5, atol=1e-6)
    assert model[1].momentum == 0.1 and model[3].momentum == 0.1  # restored


# -- resume ------------------------------------------------------------------------------------------------------

def test_recipe_run_and_resume_equals_uninterrupted(tmp_path, teacher, monkeypatch):
    opts = dict(epochs=3, teacher=teacher, kd_weight=0.5, kd_temperature=2.0, warmup_epochs=1, bn_reestimate=2)
    straight = train_run(tiny(tmp_path / "straight", **opts))
    m = straight.metrics
    assert m["recipe"] == {"teacher": str(teacher.resolve()), "kd_weight": 0.5, "kd_temperature": 2.0,
                           "warmup_epochs": 1, "bn_reestimate_batches": 2}
    # warm-up used: 3 steps per epoch, so after the first epoch the lr has just reached its peak
    # (plain cosine over 9 steps would be at 0.75 of it)
    assert straight.history[0]["lr"] == pytest.approx(5e-3, rel=1e-12)
    assert m["lr_schedule"].startswith("linear warm-up over 1 epoch")
    # batch-norm re-estimation used: model.pt has new statistics, the weights of the last epoch
    ckpt = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["state_dict"]
    saved = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["state_dict"]
    assert all(not torch.equal(saved[k], ckpt[k]) for k in saved if k.endswith("running_mean"))
    assert all(torch.equal(saved[k], ckpt[k]) for k in saved if k.endswith("weight"))
    assert m["test_accuracy_before_bn_reestimate"] == m["history"][-1]["test_accuracy"]
    assert m["export_fidelity"]["equal_fraction"] == 1.0  # the export contract holds after re-estimation
    out = tmp_path / "resumed"
    with monkeypatch.context() as mp:
        _interrupt_at_epoch(mp, 2)
        with pytest.raises(KeyboardInterrupt):
            train_run(tiny(out, **opts))
    with pytest.raises(UsageError, match="--warmup-epochs"):
        train_run(tiny(out, **{**opts, "warmup_epochs": 0}, resume=True))
    with pytest.raises(UsageError, match="--teacher"):
        train_run(tiny(out, **{**opts, "teacher": tmp_path / "straight"}, resume=True))
    resumed = train_run(tiny(out, **opts, resume=True))
    assert state_equal(straight.model.state_dict(), resumed.model.state_dict())
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(straight.metrics["history"]) == strip(resumed.metrics["history"])


# -- the default recipe -------------------------------------------------------------------------------------------

def _bn_stats_changed(run: Path) -> bool:
    """True when model.pt's batch-norm statistics differ from the last epoch's checkpoint (weights equal)."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]
    saved = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], ckpt[k]) for k in saved if k.endswith("weight"))
    stats = [k for k in saved if k.endswith(("running_mean", "running_var"))]
    assert stats, "the model has no batch norm"
    return any(not torch.equal(saved[k], ckpt[k]) for k in stats)


def _cli_train(run: Path, *opts: str) -> dict:
    rc = cli_main(["train", *opts, "--epochs", "1", "--batch-size", "32", "--limit-train", "96", "--limit-test", "48",
                   "--quiet", "--out", str(run)])
    assert rc == 0
    return json.loads((run / "metrics.json").read_text())


def test_bn_reestimation_is_the_default_for_abc_models(tmp_path):
    """abcn-hw train without --bn-reestimate re-estimates from DEFAULT_BN_REESTIMATE batches (here the
    96 images are 3 batches: all of them), records it, and the export stays bit-exact; 0 turns it off."""
    from abcn_hw.backend import compile as compile_project
    from abcn_hw.sim import verify

    assert DEFAULT_BN_REESTIMATE == 50
    m = _cli_train(tmp_path / "abc", "--model", "tfc", "--weight-bases", "1", "--act-bases", "2")
    assert m["recipe"]["bn_reestimate_batches"] == 50
    assert m["test_accuracy_before_bn_reestimate"] == m["history"][-1]["test_accuracy"]
    assert _bn_stats_changed(tmp_path / "abc")
    assert m["export_bit_exact"] is True and m["export_fidelity"]["equal_fraction"] == 1.0
    test = load_dataset("mnist", limit_train=1, limit_test=32).test
    compile_project(tmp_path / "abc" / "model.onnx", tmp_path / "build")
    res = verify(tmp_path / "abc" / "model.onnx", tmp_path / "build", test.images)
    assert res.ok and res.bit_exact and res.mismatches == 0 and res.lowering_exact
    off = _cli_train(tmp_path / "off", "--model", "tfc", "--weight-bases", "1", "--act-bases", "2",
                     "--bn-reestimate", "0")
    assert off["recipe"]["bn_reestimate_batches"] == 0 and off["test_accuracy_before_bn_reestimate"] is None
    assert not _bn_stats_changed(tmp_path / "off")
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(off["history"]) == strip(m["history"])  # the same training; only the statistics after it differ


def test_bn_reestimation_is_not_the_default_for_stock_binary(tmp_path):
    """The stock binary baseline, whose accuracy re-estimation lowered, trains without it unless asked."""
    m = _cli_train(tmp_path / "stock", "--model", "lenet-stock")
    assert m["recipe"]["bn_reestimate_batches"] == 0 and m["test_accuracy_before_bn_reestimate"] is None
    assert not _bn_stats_changed(tmp_path / "stock")
    assert default_bn_reestimate("lenet-stock") == 0 and default_bn_reestimate("lenet") == 50
    asked = tiny(tmp_path / "x", model="lenet-stock", weight_bases=None, act_bases=None, bn_reestimate=7).validate()
    assert asked.bn_reestimate == 7


def test_resume_keeps_the_runs_own_bn_reestimate(tmp_path, monkeypatch):
    """A run started with re-estimation off (or before it became the default: a checkpoint without the
    option) resumes without it when the option is not given, instead of taking today's default."""
    straight = train_run(tiny(tmp_path / "straight", epochs=2, bn_reestimate=0))
    for name, strip_option in (("off", False), ("old", True)):
        out = tmp_path / name
        with monkeypatch.context() as mp:
            _interrupt_at_epoch(mp, 2)
            with pytest.raises(KeyboardInterrupt):
                train_run(tiny(out, epochs=2, bn_reestimate=0))
        if strip_option:
            state = torch.load(out / "checkpoint.pt", weights_only=False)
            del state["train_config"]["bn_reestimate"]
            torch.save(state, out / "checkpoint.pt")
        with pytest.raises(UsageError, match=r"--bn-reestimate 50 \(run has 0\)"):  # given: it must match
            train_run(tiny(out, epochs=2, bn_reestimate=50, resume=True))
        resumed = train_run(tiny(out, epochs=2, resume=True))
        assert resumed.metrics["recipe"]["bn_reestimate_batches"] == 0, name
        assert state_equal(straight.model.state_dict(), resumed.model.state_dict()), name


def test_bad_bn_reestimate_is_one_line_error(tmp_path, capsys):
    rc = cli_main(["train", "--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--bn-reestimate", "-1",
                   "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("abcn-hw train: error: --bn-reestimate must be")
    assert "--bn-reestimate 0 to turn it off" in err[0] and not (tmp_path / "run").exists()


# -- option checks ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("over, match", [
    (dict(kd_weight=0.5), "--kd-weight needs a teacher"), (dict(kd_temperature=2.0), "--kd-temperature needs"),
    (dict(teacher="t", kd_weight=1.5), "--kd-weight must be"), (dict(teacher="t", kd_temperature=0.0), "--kd-temperature"),
    (dict(warmup_epochs=-1), "--warmup-epochs must be"), (dict(warmup_epochs=1), "leaves no epoch"),
    (dict(bn_reestimate=-2), "--bn-reestimate must be"), (dict(bn_reestimate=True), "--bn-reestimate must be"),
    (dict(bn_reestimate=2.5), "--bn-reestimate must be"),
])
def test_recipe_option_validation(tmp_path, over, match):
    with pytest.raises(UsageError, match=match):
        tiny(tmp_path / "x", **over).validate()


def test_cli_teacher_error_is_one_line(tmp_path, capsys):
    rc = cli_main(["train", "--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--epochs", "1",
                   "--limit-train", "64", "--limit-test", "16", "--teacher", str(tmp_path / "none"),
                   "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("abcn-hw train: error:") and "teacher" in err[0]
    assert not (tmp_path / "run").exists()
