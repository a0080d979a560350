"""Tests for the abcn-hw command line (in-process via main(), one subprocess --help)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abcn_hw.cli import COMMANDS, main
from abcn_hw.train import session as session_mod

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tfc", "--weight-bases", "1", "--act-bases", "2", "--epochs", "1", "--batch-size", "32",
        "--limit-train", "96", "--limit-test", "48"]


def tiny_args(epochs: int) -> list[str]:
    """TINY with another epoch count."""
    argv = list(TINY)
    argv[argv.index("--epochs") + 1] = str(epochs)
    return argv


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(err: str, command: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"abcn-hw {command}: error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run made through the CLI."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--quiet", "--out", str(out)]) == 0
    return out


def test_train_happy_path(tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli(capsys, "train", *TINY, "--out", out)
    assert rc == 0, stderr
    assert "bundled MNIST subset" in stderr and "epoch 1/1" in stdout
    assert {"model.pt", "model.onnx", "metrics.json", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    assert m["command"] == ["abcn-hw", "train", *TINY, "--out", str(out)]
    assert (m["model"], m["dataset"], m["weight_bases"], m["act_bases"], m["epochs"]) == ("tfc", "mnist", 1, 2, 1)
    assert m["scale_grid"] == "fixed" and m["seed"] == 0 and m["batch_size"] == 32 and m["lr"] == 5e-3
    assert m["dataset_source"].startswith("bundled MNIST subset")
    assert "export_fidelity" in m and "export_test_accuracy" in m and len(m["history"]) == 1


def test_eval_text_and_json(run_dir, capsys):
    m = json.loads((run_dir / "metrics.json").read_text())
    rc, out, err = run_cli(capsys, "eval", run_dir, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["test_accuracy"] == m["test_accuracy"]
    assert res["export_test_accuracy"] == m["export_test_accuracy"]
    assert res["export_fidelity"]["ok"] and res["export_fidelity"]["images"] == 48
    rc, out, err = run_cli(capsys, "eval", run_dir)
    assert rc == 0 and "checkpoint accuracy" in out and "export accuracy" in out and "export fidelity" in out


def test_export(run_dir, tmp_path, capsys):
    target = tmp_path / "sub" / "m.onnx"
    rc, out, err = run_cli(capsys, "export", run_dir / "model.pt", "--out", target, "--images", 16)
    assert rc == 0, err
    assert target.is_file() and "export fidelity on 16 inputs" in out
    assert "export: provably bit-exact" in out  # the tiny tfc run's 4-bit fixed scales
    rc, out, err = run_cli(capsys, "export", run_dir / "model.pt", "--out", target)
    assert rc == 1
    assert_one_line_error(err, "export")
    assert run_cli(capsys, "export", run_dir / "model.pt", "--out", target, "--force")[0] == 0


def test_models_lists_the_zoo(capsys):
    rc, out, _ = run_cli(capsys, "models")
    assert rc == 0
    for name in ("lenet", "tfc", "cnv", "resnet8", "lenet-stock"):
        assert f"\n{name} " in out


def test_commands_are_registered():
    assert {"models", "train", "export", "eval"} <= set(COMMANDS)


@pytest.mark.parametrize("argv, code", [
    (["--model", "vgg99", "--weight-bases", "1", "--act-bases", "1"], 2),
    (["--model", "tfc", "--dataset", "imagenet", "--weight-bases", "1", "--act-bases", "1"], 2),
    (["--model", "tfc", "--weight-bases", "0", "--act-bases", "1"], 2),
    (["--model", "tfc", "--weight-bases", "9", "--act-bases", "1"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "9"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "two"], 2),
    (["--model", "tfc", "--weight-bases", "float", "--act-bases", "2"], 2),
    (["--model", "tfc", "--act-bases", "2"], 2),
    (["--weight-bases", "1", "--act-bases", "2"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--epochs", "0"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--epochs", "many"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--batch-size", "0"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--lr", "0"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--lr", "-1e-3"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--scale-grid", "log"], 2),
    (["--model", "lenet-stock", "--weight-bases", "1"], 2),
    (["--model", "tfc", "--weight-bases", "1", "--act-bases", "1", "--dataset", "cifar10"], 1),  # not bundled
])
def test_bad_train_inputs(tmp_path, capsys, argv, code):
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *argv, "--limit-train", "64", "--out", out)
    assert rc == code, err
    assert_one_line_error(err, "train")
    assert not out.exists()


def test_data_dir_without_files(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--data-dir", empty, "--out", out)
    assert rc == 1
    assert_one_line_error(err, "train")
    assert "train-images-idx3-ubyte" in err and not out.exists()


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        rc, _, err = run_cli(capsys, "train", *TINY, "--out", out)
        assert rc == 1
        assert_one_line_error(err, "train")
    assert blocker.read_text() == "x"


def test_finished_run_needs_force(run_dir, capsys):
    before = (run_dir / "metrics.json").read_text()
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", run_dir)
    assert rc == 1 and "--force" in err
    assert_one_line_error(err, "train")
    assert (run_dir / "metrics.json").read_text() == before


def test_force_retrains(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", *TINY, "--quiet", "--out", out)[0] == 0
    first = json.loads((out / "metrics.json").read_text())
    rc, _, err = run_cli(capsys, "train", *TINY, "--quiet", "--seed", "3", "--force", "--out", out)
    assert rc == 0, err
    assert json.loads((out / "metrics.json").read_text())["seed"] == 3 != first["seed"]


def test_interrupt_then_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real, calls = session_mod.train_epoch, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(session_mod, "train_epoch", flaky)
    argv = ["train", *tiny_args(2), "--quiet", "--out", out]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 130 and "--resume" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").is_file() and not (out / "metrics.json").exists()
    rc, _, err = run_cli(capsys, "eval", out)  # unfinished: a clear error, not a crash
    assert rc == 1 and "unfinished" in err
    rc, _, err = run_cli(capsys, *argv)  # neither --resume nor --force
    assert rc == 1 and "--resume" in err
    rc, _, err = run_cli(capsys, "train", "--resume", "--quiet", "--out", out)  # options from the checkpoint
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 2 and len(m["history"]) == 2 and m["resume_commands"]
    rc, _, err = run_cli(capsys, "train", "--resume", "--out", out)
    assert rc == 1 and "nothing to resume" in err


def test_resume_without_a_run(tmp_path, capsys):
    out = tmp_path / "nothing"
    rc, _, err = run_cli(capsys, "train", "--resume", "--out", out)
    assert rc == 1
    assert_one_line_error(err, "train")
    assert not out.exists()


@pytest.mark.parametrize("command", ["eval", "export"])
def test_corrupt_checkpoint(tmp_path, capsys, command):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage")
    extra = ["--out", tmp_path / "x.onnx"] if command == "export" else []
    rc, _, err = run_cli(capsys, command, bad, *extra)
    assert rc == 1
    assert_one_line_error(err, command)
    assert "not a readable PyTorch checkpoint" in err
    assert not (tmp_path / "x.onnx").exists()


def test_missing_checkpoint(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "eval", tmp_path / "nope")
    assert rc == 1
    assert_one_line_error(err, "eval")


def test_usage_errors_exit_2(capsys):
    rc, _, err = run_cli(capsys)
    assert rc == 2 and "Traceback" not in err
    rc, _, err = run_cli(capsys, "frobnicate")
    assert rc == 2
    rc, _, err = run_cli(capsys, "eval")
    assert rc == 2
    assert_one_line_error(err, "eval")


def test_module_help_subprocess():
    proc = subprocess.run([sys.executable, "-m", "abcn_hw.cli", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "eval" in proc.stdout
