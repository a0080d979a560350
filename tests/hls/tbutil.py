"""Build and run the C++ testbenches of hls/tb (helpers used by conftest.py and the tests).

Each testbench is compiled once per (testbench, -D config, variant) per test session, in a
session temp dir; all builds the selected tests need are started in a thread pool as soon as
collection finishes, so compilation overlaps on the available cores and with test execution.

Variants:
  default   g++ -std=c++14 -O2 -Wall -Werror -I hls/include -I <ap_types>
  strict    + -Wextra, the library headers checked as user code (-DABCN_NO_SYSTEM_HEADER,
            -Wno-unknown-pragmas), ap_types via -isystem
  portable  default + -DABCN_SIM_SYNTH_PATH -DABCN_AP_ROMS (simulate the synthesizable code, not
            the csim fast paths, with ap_uint parameter ROMs as synthesis stores them)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HLS_INCLUDE = ROOT / "hls" / "include"
TB_DIR = ROOT / "hls" / "tb"


def ap_types_dir() -> Path | None:
    """The Xilinx open-source ap_types headers shipped by the hls4ml wheel (found, not imported)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        return None  # environment without the hls extra
    p = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    return p if (p / "ap_int.h").is_file() else None


AP_TYPES = ap_types_dir()
CXX = shutil.which("g++")


@dataclass(frozen=True)
class Spec:
    """One testbench build: hls/tb/<tb>.cpp with -DCFG_<key>=<value> for each define."""

    tb: str
    defines: tuple = ()
    variant: str = "default"
    pch: bool = True

    @staticmethod
    def of(tb: str, variant: str = "default", pch: bool = True, **defines) -> "Spec":
        return Spec(tb, tuple(sorted((k, int(v)) for k, v in defines.items())), variant, pch)

    def flags(self) -> list[str]:
        cmd = [CXX, "-std=c++14", "-O2", "-Wall", "-Werror", "-I", str(HLS_INCLUDE)]
        if self.variant == "strict":
            cmd += ["-Wextra", "-Wno-unknown-pragmas", "-DABCN_NO_SYSTEM_HEADER", "-isystem", str(AP_TYPES)]
        else:
            cmd += ["-I", str(AP_TYPES)]
        if self.variant == "portable":
            cmd += ["-DABCN_SIM_SYNTH_PATH", "-DABCN_AP_ROMS"]
        return cmd

    def command(self, out: Path, pch: Path | None = None) -> list[str]:
        cmd = self.flags()
        if pch is not None:
            # precompiled tb_common.hpp (same flags); the .cpp's own include is then a no-op.
            # g++ 12 does not keep the '#pragma GCC diagnostic' state of common.hpp in a PCH, so
            # the warnings common.hpp silences around the ap_types headers are silenced on the
            # command line instead; the exact flags (no PCH) are checked once per testbench by
            # test_build_flags.py, and the strict variant never uses a PCH.
            cmd += ["-Winvalid-pch", *pch_warning_flags(), "-include", str(pch)]
        cmd += [f"-DCFG_{k}={v}" for k, v in self.defines]
        if self.syntax_only:
            return cmd + ["-fsyntax-only", str(TB_DIR / f"{self.tb}.cpp")]
        return cmd + [str(TB_DIR / f"{self.tb}.cpp"), "-o", str(out)]

    @property
    def syntax_only(self) -> bool:
        # strict builds check the library's own (front-end) warnings; no binary is needed
        return self.variant == "strict"


def pch_warning_flags() -> list[str]:
    """-Wno-X for every '#pragma GCC diagnostic ignored "-WX"' of common.hpp."""
    import re  # noqa: PLC0415

    text = (HLS_INCLUDE / "abcn" / "common.hpp").read_text()
    return ["-Wno-" + w for w in re.findall(r'#pragma GCC diagnostic ignored "-W([\w-]+)"', text)]


class BuildError(RuntimeError):
    pass


class Builder:
    """Compiles testbenches in a thread pool; tb_common.hpp (the library and the ap_types headers)
    is precompiled once per variant (set ABCN_HLS_NO_PCH=1 to disable)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="abcn-hls-tb-"))
        self.pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self.futures: dict[Spec, Future] = {}
        self.pch: dict[str, Path | None] = {}
        self.pch_locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()
        self.build_seconds: list[float] = []
        self.use_pch = os.environ.get("ABCN_HLS_NO_PCH", "") in ("", "0")
        #: a folder of this test run that every pytest-xdist worker sees (conftest.py sets it): the
        #: PCH of each variant is then built once per run, not once per worker
        self.shared_dir: Path | None = None
        self.shared_pch: list[Path] = []

    def _build_pch(self, variant: str) -> Path | None:
        if self.shared_dir is not None:
            return self._shared_pch(variant)
        d = self.dir / f"pch-{variant}"
        d.mkdir()
        return self._compile_pch(variant, d)

    def _shared_pch(self, variant: str) -> Path | None:
        import fcntl  # noqa: PLC0415

        d = self.shared_dir / f"abcn-hls-pch-{variant}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds it; the others wait, then reuse it
            (d / f"user-{os.getpid()}").touch()  # in use until close(); the last user removes it
            self.shared_pch.append(d)
            state = d / "state"
            if not state.exists():
                state.write_text("ok" if self._compile_pch(variant, d) else "failed")
            return d / "tb_common.hpp" if state.read_text() == "ok" else None

    def _release_shared_pch(self) -> None:
        """Remove the shared PCH (80 MB per variant) once no worker of the run uses it any more; a
        worker that needs it later builds it again."""
        import fcntl  # noqa: PLC0415

        for d in self.shared_pch:
            with open(d / "lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                (d / f"user-{os.getpid()}").unlink(missing_ok=True)
                if not any(d.glob("user-*")):
                    for name in ("state", "tb_common.hpp", "tb_common.hpp.gch"):
                        (d / name).unlink(missing_ok=True)

    @staticmethod
    def _compile_pch(variant: str, d: Path) -> Path | None:
        hdr = d / "tb_common.hpp"
        shutil.copyfile(TB_DIR / "tb_common.hpp", hdr)
        cmd = Spec("pch", (), variant).flags() + [*pch_warning_flags(), "-x", "c++-header", str(hdr), "-o", str(hdr) + ".gch"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return hdr if proc.returncode == 0 else None  # fall back to plain builds

    def _build(self, spec: Spec, idx: int) -> Path:
        pch = None
        if self.use_pch and spec.pch and spec.variant != "strict":
            with self.lock:  # one lock per variant; the first thread builds the PCH in place
                vlock = self.pch_locks.setdefault(spec.variant, threading.Lock())
            with vlock:
                if spec.variant not in self.pch:
                    self.pch[spec.variant] = self._build_pch(spec.variant)
                pch = self.pch[spec.variant]
        out = self.dir / f"{spec.tb}_{idx}"
        cmd = spec.command(out, pch)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        self.build_seconds.append(time.monotonic() - t0)
        if proc.returncode != 0:
            raise BuildError(f"build failed: {' '.join(cmd)}\n{proc.stderr[-6000:]}")
        return cmd if spec.syntax_only else out

    def compile_error(self, spec: Spec) -> str:
        """Compile `spec` with -fsyntax-only right away (not queued); return the error output
        (empty if it compiled)."""
        cmd = spec.flags() + [f"-DCFG_{k}={v}" for k, v in spec.defines]
        cmd += ["-fsyntax-only", str(TB_DIR / f"{spec.tb}.cpp")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return proc.stderr if proc.returncode != 0 else ""

    def submit(self, spec: Spec) -> Future:
        with self.lock:
            if spec not in self.futures:
                self.futures[spec] = self.pool.submit(self._build, spec, len(self.futures))
            return self.futures[spec]

    def get(self, spec: Spec) -> Path:
        return self.submit(spec).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._release_shared_pch()
        shutil.rmtree(self.dir, ignore_errors=True)


_BUILDER: Builder | None = None


def builder() -> Builder:
    global _BUILDER
    if _BUILDER is None:
        _BUILDER = Builder()
    return _BUILDER


@dataclass
class TBResult:
    words: list = field(default_factory=list)
    iters: int = -1
    calls: int = -1
    counts: dict = field(default_factory=dict)  # kernel name -> (iters, calls), multi-kernel tbs


def write_tokens(path: Path, tokens) -> None:
    path.write_text(" ".join(str(t) for t in tokens) + "\n")


def run_raw(binary: Path, tokens, tmp: Path) -> subprocess.CompletedProcess:
    inp, outp = tmp / "in.txt", tmp / "out.txt"
    write_tokens(inp, tokens)
    return subprocess.run([str(binary), str(inp), str(outp)], capture_output=True, text=True, timeout=120)


def run_tb(binary: Path, tokens, tmp: Path) -> TBResult:
    proc = run_raw(binary, tokens, tmp)
    assert proc.returncode == 0, f"testbench failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
    # hls::stream reports reads of empty streams / leftover data on stdout
    assert "WARNING" not in proc.stdout, proc.stdout
    lines = (tmp / "out.txt").read_text().split("\n")
    lines = [ln for ln in lines if ln]
    last = lines[-1].split()
    assert last[0] == "ITERS" and last[2] == "CALLS", lines[-1]
    counts = {}
    words = []
    for ln in lines[:-1]:
        if ln.startswith("COUNT "):
            _, name, it, ca = ln.split()
            counts[name] = (int(it), int(ca))
        else:
            words.append(ln)
    return TBResult(words=words, iters=int(last[1]), calls=int(last[3]), counts=counts)


def shutdown() -> None:
    global _BUILDER
    if _BUILDER is not None:
        if os.environ.get("ABCN_HLS_TIMING"):
            t = _BUILDER.build_seconds
            print(f"\n[abcn-hls] {len(t)} testbench builds, {sum(t):.1f} s total, max {max(t, default=0):.1f} s")
        _BUILDER.close()
        _BUILDER = None


def run_spec(spec: Spec, tokens, tmp: Path) -> TBResult:
    """Build (cached) and run one testbench; the run must succeed without stream warnings."""
    return run_tb(builder().get(spec), tokens, tmp)
