"""A build dir is code: its design runs in a child process (a crash is a one-line error naming the
build dir, and Python survives; a design that never returns is stopped at a time limit), its compiled simulation is cached per compiler, compiler version
and resolved target CPU features, and names read back from it are sanitised before they become
file names."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from abcn_hw.backend.names import file_stems
from abcn_hw.sim import CsimError, simulate
from abcn_hw.sim.csim import CSIM_EXTRA_FLAGS, build, toolchain_id

#: injected at the start of abcn_top: the first word of the file CONTROL picks the failure (read on
#: every call, in whichever process runs the design)
_CRASH = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
__attribute__((noinline)) static int abcn_test_stack() {  // a layer buffer far larger than any stack
    volatile char big[1 << 28];
    big[0] = 1;
    big[(1 << 28) - 1] = big[0];
    return big[(1 << 28) - 1];
}
static void abcn_test_crash() {
    char how[32] = {0};
    std::FILE *f = std::fopen("CONTROL", "r");
    if (!f) return;
    const int ok = std::fscanf(f, "%31s", how);
    std::fclose(f);
    if (ok != 1) return;
    if (!std::strcmp(how, "abort")) std::abort();
    if (!std::strcmp(how, "stack")) abcn_test_stack();
    if (!std::strcmp(how, "hang")) for (volatile int spin = 1; spin;) {}  // a top function that never returns
    if (!std::strncmp(how, "write:", 6)) *(volatile int *)std::strtoull(how + 6, nullptr, 0) = 1;  // write:0x8
}
"""


def _crash(bad: Path, how: str | None) -> None:
    control = bad / "crash_control.txt"
    if how is None:
        control.unlink(missing_ok=True)
    else:
        control.write_text({"segv": "write:0x8"}.get(how, how) + "\n")


@pytest.fixture(scope="module")
def crashing(tfc, tmp_path_factory):
    """A copy of the TFC build dir whose top function crashes on demand (:func:`_crash`)."""
    _, x, build_dir = tfc
    bad = tmp_path_factory.mktemp("crash") / "build_crash"
    shutil.copytree(build_dir, bad, ignore=shutil.ignore_patterns(".csim", "build"))
    top = bad / "src" / "top.cpp"
    text = top.read_text()
    head, sep, rest = text.partition("void abcn_top(")
    body_start = rest.index("{") + 1
    crash = _CRASH.replace("CONTROL", str((bad / "crash_control.txt").resolve()))
    top.write_text(head + crash + sep + rest[:body_start] + " abcn_test_crash();" + rest[body_start:])
    return bad, x


@pytest.mark.parametrize("how,signal", [("segv", "SIGSEGV"), ("abort", "SIGABRT"), ("stack", "SIGSEGV")])
def test_crash_is_an_error_and_python_survives(crashing, tfc, how, signal):
    bad, x = crashing
    _crash(bad, how)
    for dump in (False, True):  # in-process library (child process) and the dump executable
        with pytest.raises(CsimError) as e:
            simulate(bad, x[:8], dump=dump)
        msg = str(e.value)
        assert "crashed" in msg and signal in msg and str(bad) in msg and "--force" in msg
        assert "\n" not in msg
    _crash(bad, None)
    # the same build dir runs again (a fresh child), and so does a healthy one, in this process
    assert np.array_equal(simulate(bad, x[:8]).output, simulate(tfc[2], x[:8]).output)


def test_cli_crash_one_line_nonzero_nothing_written(crashing, tmp_path):
    bad, x = crashing
    np.save(tmp_path / "x.npy", x[:4])
    _crash(bad, "segv")
    for extra in ([], ["--dump", str(tmp_path / "dump")]):
        r = subprocess.run([sys.executable, "-m", "abcn_hw", "csim", str(bad), "--inputs", str(tmp_path / "x.npy"),
                            "--out", str(tmp_path / "y.npy"), *extra], capture_output=True, text=True)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("abcn-hw csim: error: the simulated design crashed (SIGSEGV")
        assert str(bad) in lines[0] and "Traceback" not in r.stderr
        assert not (tmp_path / "y.npy").exists() and not (tmp_path / "dump").exists()
    _crash(bad, None)


def test_hanging_design_is_stopped_at_the_time_limit(crashing, tfc):
    """A top function that loops forever: the wait ends at ``timeout``, the design's process is
    killed (library child and dump executable alike), and the error names the build dir and the fix."""
    import importlib
    import time

    csim_mod = importlib.import_module("abcn_hw.sim.csim")

    bad, x = crashing
    _crash(bad, "hang")
    try:
        for dump in (False, True):
            build(bad, dump=dump, library=not dump)  # the g++ build is not part of the time limit
            t0 = time.monotonic()
            with pytest.raises(CsimError) as e:
                simulate(bad, x[:8], dump=dump, timeout=1.5)
            waited = time.monotonic() - t0
            msg = str(e.value)
            assert 1.5 <= waited < 30, waited
            assert "gave no result for 8 images within 1.5 s and was stopped" in msg and str(bad) in msg, msg
            assert "--force" in msg and "--timeout" in msg and "\n" not in msg
        lib = str(build(bad, library=True))
        assert csim_mod._DESIGNS[lib]._proc is None  # the spinning child was killed, not left running
    finally:
        _crash(bad, None)
    assert np.array_equal(simulate(bad, x[:8], timeout=60).output, simulate(tfc[2], x[:8]).output)


def test_kept_design_processes_bounded_by_count_and_memory(monkeypatch):
    """simulate() keeps a child process per library waiting for its next batch (a restart costs a
    20,000-image TFC call 120 ms instead of 30 ms): a rotation over 12 libraries (fast and synthesis
    views of six models, as scripts/bench_csim.py runs) keeps all of them; beyond KEEP_DESIGNS
    children or KEEP_DESIGN_BYTES of shared memory held together, the least recently used idle ones
    are ended, never the one in use nor a busy one."""
    import importlib
    from collections import OrderedDict

    csim_mod = importlib.import_module("abcn_hw.sim.csim")
    assert csim_mod.KEEP_DESIGNS >= 12 and csim_mod.KEEP_DESIGN_BYTES >= 12 * (128 << 20) // 2

    class Child:
        def __init__(self, path):
            self.path, self.mapped_bytes, self.busy, self.closed = path, 0, False, False

        def close_if_idle(self):
            self.closed = not self.busy
            return self.closed

    monkeypatch.setattr(csim_mod, "DesignProcess", Child)
    monkeypatch.setattr(csim_mod, "_DESIGNS", OrderedDict())
    monkeypatch.setattr(csim_mod, "KEEP_DESIGN_BYTES", 1000)
    monkeypatch.setattr(csim_mod, "KEEP_DESIGNS", 16)
    kids = {}
    for r in range(3):
        for i in range(12):
            kids[i] = csim_mod._design(f"lib{i}")
            kids[i].mapped_bytes = 50
    assert list(csim_mod._DESIGNS) == [f"lib{i}" for i in range(12)] and not any(k.closed for k in kids.values())
    kids[0].busy = True
    big = csim_mod._design("big")
    big.mapped_bytes = 700  # 12 x 50 + 700 > 1000: the least recently used idle ones go, lib0 is busy
    csim_mod._design("big")
    assert kids[0].closed is False and [k for k in range(12) if kids[k].closed] == [1, 2, 3, 4, 5, 6]
    assert list(csim_mod._DESIGNS) == ["lib0", *(f"lib{i}" for i in range(7, 12)), "big"]
    for i in range(20):
        csim_mod._design(f"small{i}")  # more children than KEEP_DESIGNS, none holding memory
    assert len(csim_mod._DESIGNS) == 16 and "big" not in csim_mod._DESIGNS and "lib0" in csim_mod._DESIGNS


def test_cli_hang_one_line_nonzero(crashing, tfc, tmp_path):
    bad, x = crashing
    np.save(tmp_path / "x.npy", x[:4])
    _crash(bad, "hang")
    try:
        r = subprocess.run([sys.executable, "-m", "abcn_hw", "verify", str(tfc[0]), str(bad), "--inputs",
                            str(tmp_path / "x.npy"), "--timeout", "2"], capture_output=True, text=True, timeout=300)
    finally:
        _crash(bad, None)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcn-hw verify: error: the simulated design gave no result"), r.stderr
    assert str(bad) in lines[0] and "Traceback" not in r.stderr


def test_default_time_limit_scales_with_the_work(tfc):
    from abcn_hw.sim.csim import TIMEOUT_BASE_S, default_timeout, design_work

    _, _, build_dir = tfc
    io = json.loads((build_dir / "host" / "io.json").read_text())
    est = json.loads((build_dir / "report.json").read_text())["estimate"]["layers"]
    macs = sum(la["MW"] * la["MH"] * la.get("M", 1) * la.get("N", 1) for la in est if "MW" in la)
    assert design_work(build_dir, io) >= macs > 0  # TFC: no pixels, one vector per layer
    one, many = default_timeout(build_dir, io, 1), default_timeout(build_dir, io, 100_000)
    assert TIMEOUT_BASE_S < one < many and many - TIMEOUT_BASE_S == pytest.approx(1e5 * (one - TIMEOUT_BASE_S))
    assert default_timeout(build_dir, io, 1000, "synth") > default_timeout(build_dir, io, 1000)
    for bad in (-1, float("nan"), float("inf"), "10", True):
        with pytest.raises(Exception, match="timeout must be"):
            simulate(build_dir, np.zeros((1, *io["input_shape"]), np.float32), timeout=bad)


def _fake_compiler(path: Path, cpu: str) -> Path:
    """A stand-in compiler driver whose -### dry run expands -march=native to ``cpu``."""
    path.write_text("#!/bin/sh\n"
                    'case "$*" in\n'
                    '  *--version*) echo "fakec++ 1.0";;\n'
                    f'  *"-###"*) echo \' /opt/fake/cc1plus -quiet "-march={cpu}" -mavx2 -mno-avx512f '
                    f'--param "l1-cache-size=32" -O3 -o /tmp/ccXYZ.s\' >&2;;\n'
                    "esac\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_cache_key_holds_compiler_version_and_cpu_features(tmp_path):
    a = toolchain_id(str(_fake_compiler(tmp_path / "a", "znver3")), tuple(CSIM_EXTRA_FLAGS))
    b = toolchain_id(str(_fake_compiler(tmp_path / "b", "skylake")), tuple(CSIM_EXTRA_FLAGS))
    assert "-march=znver3" in a and "-mavx2" in a and "fakec++ 1.0" in a and "l1-cache-size=32" in a
    assert "/tmp/ccXYZ.s" not in a  # temporary file names would defeat the cache
    assert a.replace("znver3", "skylake").replace(str(tmp_path / "a"), str(tmp_path / "b")) == b
    real = toolchain_id("g++", tuple(CSIM_EXTRA_FLAGS))
    assert os.path.realpath(shutil.which("g++")) in real
    assert any(t.startswith("-march=") and t != "-march=native" for t in real.split("\0")) or "target-cpu" in real


def test_copied_build_dir_rebuilds_for_another_machine(tfc, tmp_path, monkeypatch):
    """A build dir whose .csim holds libraries built elsewhere (another CPU, another compiler):
    they are never loaded; this machine's key selects (and builds) its own."""
    import importlib

    csim_mod = importlib.import_module("abcn_hw.sim.csim")

    _, x, build_dir = tfc
    here = build(build_dir, library=True)
    copy = tmp_path / "copied"
    shutil.copytree(build_dir, copy, ignore=shutil.ignore_patterns("build"))
    # what another machine left behind under its own key: not a loadable library at all
    elsewhere = copy / ".csim" / "0123456789abcdef0123"
    elsewhere.mkdir(parents=True)
    (elsewhere / "libabcn_csim.so").write_bytes(b"\x7fELF built for another machine")
    monkeypatch.setattr(csim_mod, "toolchain_id", lambda cxx, flags: "another compiler, another CPU")
    key_other = build(copy, library=True)
    assert key_other.parent.name != here.parent.name and key_other.parent.name != elsewhere.name
    monkeypatch.undo()
    assert build(copy, library=True).parent.name == here.parent.name  # same machine: the copied library
    assert np.array_equal(simulate(copy, x[:4]).output, simulate(build_dir, x[:4]).output)


def test_dump_file_names_resanitised(tfc, tmp_path):
    """Layer ids in a build dir's io.json are not trusted as file names."""
    from abcn_hw.cli import main

    _, x, build_dir = tfc
    copy = tmp_path / "b"
    shutil.copytree(build_dir, copy, ignore=shutil.ignore_patterns("build"))
    io_path = copy / "host" / "io.json"
    io = json.loads(io_path.read_text())
    evil = ["../../escaped", "/etc/passwd", "a\nb", ""] + ["L9"] * 8
    for tap, name in zip(io["taps"], evil):
        tap["layer"] = name
    io_path.write_text(json.dumps(io))
    np.save(tmp_path / "x.npy", x[:3])
    dump = tmp_path / "deep" / "dump"
    assert main(["csim", str(copy), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"),
                 "--dump", str(dump)]) == 0
    written = sorted(p.name for p in dump.iterdir())
    assert len(written) == len(io["taps"]) and all(p.endswith(".npy") for p in written)
    assert not (tmp_path / "escaped.npy").exists() and not (tmp_path / "deep" / "escaped.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "deep", "x.npy", "y.npy"]


def test_file_stems():
    assert file_stems(["L0_conv", "../../x", "a/b", "", "a_b", "A_B", "a_b"]) == \
        ["L0_conv", "x", "a_b", "tap3", "a_b_4", "A_B_5", "a_b_6"]
    assert all(len(s) <= 64 for s in file_stems(["x" * 500, "x" * 500]))
