"""Tests for abcn_hw.train: determinism, resume, checkpoints, evaluation, config validation."""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from abcn_hw.errors import CheckpointError, OutputPathError, UsageError
from abcn_hw.train import (
    MODEL_FORMAT,
    TRAIN_STATE_FORMAT,
    TrainConfig,
    evaluate,
    load_checkpoint,
    model_payload,
    parse_bases,
    read_checkpoint,
    train_run,
)
from abcn_hw.train import session as session_mod

TINY = dict(model="tfc", weight_bases=1, act_bases=2, epochs=1, batch_size=32, limit_train=96, limit_test=48,
            quiet=True)


def tiny(out: Path, **over) -> TrainConfig:
    """A run of a few seconds: the smallest zoo MLP on 96 bundled MNIST images."""
    return TrainConfig(out=out, **{**TINY, **over})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished tiny run shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train_run(tiny(out))
    return out


# -- determinism / resume ------------------------------------------------------------------------------

def test_same_seed_gives_identical_weights(tmp_path, finished):
    again = train_run(tiny(tmp_path / "again"))
    ref = torch.load(finished / "model.pt", weights_only=True)["state_dict"]
    assert state_equal(ref, again.model.state_dict())
    first = json.loads((finished / "metrics.json").read_text())
    assert [h["loss"] for h in first["history"]] == [h["loss"] for h in again.metrics["history"]]


def test_other_seed_gives_other_weights(tmp_path, finished):
    other = train_run(tiny(tmp_path / "other", seed=1))
    ref = torch.load(finished / "model.pt", weights_only=True)["state_dict"]
    assert not state_equal(ref, other.model.state_dict())


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    """Make the ``epoch``-th call of train_epoch (1-based) raise KeyboardInterrupt."""
    real, calls = session_mod.train_epoch, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(session_mod, "train_epoch", flaky)


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    straight = train_run(tiny(tmp_path / "straight", epochs=3))
    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train_run(tiny(out, epochs=3))
    assert (out / "checkpoint.pt").is_file()
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(OutputPathError, match="unfinished"):
        train_run(tiny(out, epochs=3))  # neither --resume nor --force
    resumed = train_run(tiny(out, epochs=3, resume=True))
    assert state_equal(straight.model.state_dict(), resumed.model.state_dict())
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(straight.metrics["history"]) == strip(resumed.metrics["history"])
    assert resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]


def test_resume_rejects_changed_options(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train_run(tiny(out, epochs=2))
    with pytest.raises(UsageError, match="--lr"):
        train_run(tiny(out, epochs=2, resume=True, lr=0.1))


def test_interrupt_in_first_epoch_leaves_no_directory(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupt_at_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny(out))
    assert not out.exists()


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_run(tiny(tmp_path / "nothing", resume=True))


# -- run directory ---------------------------------------------------------------------------------------

def test_run_directory_contents(finished):
    names = {p.name for p in finished.iterdir()}
    assert {"model.pt", "model.onnx", "metrics.json", "checkpoint.pt"} <= names
    assert not [n for n in names if ".tmp" in n]
    m = json.loads((finished / "metrics.json").read_text())
    for key in ("test_accuracy", "export_test_accuracy", "export_fidelity", "model", "dataset", "dataset_source",
                "weight_bases", "act_bases", "scale_grid", "epochs", "seed", "batch_size", "lr", "history",
                "command", "wall_seconds"):
        assert key in m, key
    assert 0.0 <= m["test_accuracy"] <= 1.0
    # tfc (1, 2), 4-bit fixed scales: every partial sum below 2^24, so the export is bit-exact on any CPU
    assert m["export_bit_exact"] is True and m["export_exactness"]["first_failing_layer"] is None
    assert len(m["export_exactness"]["layers"]) == 4
    assert m["export_fidelity"]["equal_fraction"] == 1.0 and m["export_test_accuracy"] == m["test_accuracy"]
    assert m["export_fidelity"]["ok"] and m["export_fidelity"]["images"] == 48
    assert set(m["history"][0]) >= {"loss", "train_accuracy", "test_accuracy", "seconds"}


def test_run_that_is_not_provably_exact_says_so(tmp_path, capsys):
    """16-bit scales: K * sum|b| * sum|a| >= 2^24 in every layer; said before training (from the
    configuration) and after it (from the trained scales), and recorded in metrics.json."""
    res = train_run(tiny(tmp_path / "wide", scale_bits=16, limit_train=32, limit_test=16))
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "bit-exact" in line]
    assert len(notes) == 2 and all("layer classifier.0" in n for n in notes), err
    m = json.loads((tmp_path / "wide" / "metrics.json").read_text())
    assert m["export_bit_exact"] is False and m["export_exactness"]["first_failing_layer"] == "classifier.0"
    assert "2^24" in m["export_exactness"]["reason"] and res.metrics["export_bit_exact"] is False


def test_finished_run_is_protected(finished):
    before = (finished / "metrics.json").read_text()
    with pytest.raises(OutputPathError, match="finished run"):
        train_run(tiny(finished))
    assert (finished / "metrics.json").read_text() == before


def test_out_under_a_file_is_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError):
        train_run(tiny(blocker / "run"))


# -- checkpoints -------------------------------------------------------------------------------------------

def test_checkpoints_load_with_weights_only(finished):
    model_pt = torch.load(finished / "model.pt", weights_only=True)
    assert model_pt["format"] == MODEL_FORMAT and model_pt["version"] == 1
    assert set(model_pt) == {"format", "version", "config", "state_dict"}
    json.dumps(model_pt["config"])
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    assert state["format"] == TRAIN_STATE_FORMAT and state["epoch"] == 1
    assert {"optimizer", "scheduler", "rng", "history", "train_config"} <= set(state)


def test_load_checkpoint_reproduces_the_model(finished):
    model = load_checkpoint(finished / "model.pt")
    again = load_checkpoint(finished)  # a run directory means its model.pt
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    m = json.loads((finished / "metrics.json").read_text())
    from abcn_hw.data import load_dataset

    test = load_dataset("mnist", limit_test=48, limit_train=1).test
    assert evaluate(model, test) == m["test_accuracy"]


def _corrupt_variants(tmp: Path, good: Path) -> dict[str, Path]:
    payload = torch.load(good, weights_only=True)
    files = {}

    def save(name, obj):
        files[name] = tmp / f"{name}.pt"
        torch.save(obj, files[name])

    save("bare_state_dict", payload["state_dict"])
    save("other_tool", {"model": payload["state_dict"], "epoch": 3})
    save("wrong_version", {**payload, "version": 99})
    save("missing_key", {**payload, "state_dict": dict(list(payload["state_dict"].items())[1:])})
    sd = dict(payload["state_dict"])
    key = next(k for k, v in sd.items() if v.dim() == 2)
    sd[key] = torch.zeros(3, 3)
    save("wrong_shape", {**payload, "state_dict": sd})
    save("bad_config", {**payload, "config": {**payload["config"], "name": "nope"}})
    files["garbage"] = tmp / "garbage.pt"
    files["garbage"].write_bytes(b"this is not a checkpoint")
    files["truncated"] = tmp / "truncated.pt"
    files["truncated"].write_bytes(good.read_bytes()[:1000])
    files["empty"] = tmp / "empty.pt"
    files["empty"].write_bytes(b"")
    files["pickled_object"] = tmp / "obj.pt"
    torch.save({"format": MODEL_FORMAT, "obj": zipfile.ZipInfo("x")}, files["pickled_object"])
    files["plain_pickle"] = tmp / "plain.pkl"
    files["plain_pickle"].write_bytes(pickle.dumps({"a": 1}))
    files["missing"] = tmp / "does-not-exist.pt"
    return files


def test_unusable_checkpoints_raise_checkpoint_error(tmp_path, finished):
    for name, path in _corrupt_variants(tmp_path, finished / "model.pt").items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert "\n" not in msg, name
        assert str(path.name) in msg or str(tmp_path) in msg, (name, msg)


def test_read_checkpoint_rejects_wrong_kind(finished):
    with pytest.raises(CheckpointError, match="wrong checkpoint kind"):
        read_checkpoint(finished / "model.pt", formats=(TRAIN_STATE_FORMAT,))


def test_model_payload_needs_config():
    with pytest.raises(CheckpointError):
        model_payload(torch.nn.Linear(2, 2))


# -- evaluation / options ---------------------------------------------------------------------------------------

def test_evaluate_returns_a_fraction():
    from abcn_hw.data import Split
    from abcn_hw.models import build_model

    model = build_model("tfc", 1, 1)
    rng = np.random.default_rng(0)
    split = Split(rng.random((20, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 20).astype(np.int64))
    acc = evaluate(model, split, batch_size=7)
    assert 0.0 <= acc <= 1.0 and (acc * 20) == round(acc * 20)
    assert model.training  # mode restored


@pytest.mark.parametrize("over, match", [
    (dict(weight_bases=0), "--weight-bases"), (dict(act_bases=9), "--act-bases"),
    (dict(weight_bases="two"), "--weight-bases"), (dict(weight_bases=None), "--weight-bases is required"),
    (dict(epochs=0), "--epochs"), (dict(batch_size=0), "--batch-size"), (dict(lr=0.0), "--lr"),
    (dict(lr=float("nan")), "--lr"), (dict(scale_grid="log"), "scale grid"), (dict(seed=-1), "--seed"),
    (dict(model="lenet-stock"), "does not apply"), (dict(resume=True, force=True), "contradict"),
])
def test_config_validation(tmp_path, over, match):
    with pytest.raises(UsageError, match=match):
        tiny(tmp_path / "x", **over).validate()
    assert not (tmp_path / "x").exists()


def test_parse_bases():
    assert parse_bases("3", "--m") == 3 and parse_bases("float", "--m") == "float" and parse_bases(8, "--m") == 8


def test_float_reference_and_stock_baseline_train(tmp_path):
    fp = train_run(tiny(tmp_path / "fp", weight_bases="float", act_bases="float"))
    assert fp.metrics["weight_bases"] == "float" and fp.metrics["lr"] == 5e-3
    stock = train_run(tiny(tmp_path / "stock", model="lenet-stock", weight_bases=None, act_bases=None,
                           limit_train=64, limit_test=32))
    assert stock.metrics["weight_bases"] == "brevitas-binary"
    assert stock.metrics["export_fidelity"]["argmax_agreement"] == 1.0
    from brevitas.nn import QuantConv2d, QuantLinear

    layers = [m for m in stock.model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    assert len(layers) == 4
    for m in layers:  # latent binary weights clipped to the +-0.1 scale (BNN-PYNQ recipe)
        assert float(m.weight.detach().abs().max()) <= 0.1 + 1e-7
