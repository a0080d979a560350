"""Build (cached) and run the batch C-simulation driver of a generated project."""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import AbcnError, DataError, UsageError
from ..backend import host_native
from . import host as host_mod
from .design_process import DesignCrash, DesignLoadError, DesignProcess, DesignTimeout, NoEntryPoints, signal_name


class CsimError(AbcnError):
    """The C simulation could not be built or run."""


CXX_FLAGS = ["-std=c++14", "-O2", "-Wall", "-Werror", "-pthread"]
#: csim-only: the binary runs on the machine that builds it (popcnt etc.); not in the Makefile
CSIM_EXTRA_FLAGS = ["-O3", "-march=native"]


def _project(build_dir) -> tuple[Path, dict]:
    b = Path(build_dir)
    io_path = b / "host" / "io.json"
    if not io_path.is_file() or not (b / "src" / "top.cpp").is_file():
        raise UsageError("not an abcn-hw build dir (host/io.json or src/top.cpp missing)", str(b),
                         "run 'abcn-hw compile MODEL.onnx --out BUILD_DIR' first")
    return b, json.loads(io_path.read_text())


@lru_cache(maxsize=None)
def toolchain_id(cxx: str, flags: tuple[str, ...]) -> str:
    """What the compiled simulation depends on besides the sources: the compiler's resolved path, its
    version, and the target options ``flags`` resolve to on this machine (``-march=native`` becomes
    the CPU's -march and its -m feature flags, read from the driver's ``-###`` dry run). A build dir
    copied to another machine or built with another compiler gets another key, so it is rebuilt
    rather than reusing a library compiled for other instructions (SIGILL)."""
    path = shutil.which(cxx) or cxx
    real = os.path.realpath(path)

    def run(args: list[str]) -> str:
        try:
            r = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise CsimError(f"cannot run the C++ compiler: {e}", cxx, "install g++") from e
        return r.stdout + r.stderr

    version = run(["--version"]).strip().splitlines()[:1]
    # the compiler proper's command line as the driver expands the target options: -march=<cpu>
    # and every -m feature flag (gcc), -target-cpu / -target-feature (clang)
    target: list[str] = []
    for line in run([*flags, "-###", "-x", "c++", "-S", os.devnull, "-o", os.devnull]).splitlines():
        if not line.startswith(" "):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        target += [t for i, t in enumerate(tokens)
                   if t.startswith("-m") or (i and tokens[i - 1] in ("--param", "-target-cpu", "-target-feature",
                                                                    "-tune-cpu"))]
    if not target:  # a driver without -###: gcc's list of enabled target options
        target = run([*flags, "-Q", "--help=target"]).split()
    return "\0".join([real, *version, *target])


def source_hash(build_dir: Path, flags: list[str], ap: str) -> str:
    h = hashlib.sha256()
    h.update(("\0".join(flags) + "\0" + ap + "\0").encode())
    for sub in ("src", "tb", "include"):
        for p in sorted((build_dir / sub).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(build_dir)).encode() + b"\0")
                h.update(p.read_bytes())
                h.update(b"\0")
    return h.hexdigest()[:20]


#: the generated host steps of the library (abcn_hw/backend/host_native.py)
NATIVE_HOST_SOURCE = "tb/csim_host.cpp"
#: the design and the batch driver, compiled as one translation unit (.csim/<key>/UNITY_SOURCE
#: includes them) by :func:`build`
DESIGN_SOURCES = ("src/top.cpp", "tb/csim_driver.cpp")
UNITY_SOURCE = "csim_unity.cpp"
#: ABI of its entry points this module speaks (abcn_csim_host_info(0))
NATIVE_HOST_ABI = host_native.ABI_VERSION
#: where simulate() runs the host steps: "auto" (native when the build dir has them), "native", "onnx"
HOSTS = ("auto", "native", "onnx")

#: C-simulation variants: the default (fast paths, plain-integer parameter ROMs) or what synthesis
#: sees (the synthesizable loop code and ap_uint ROM words; much slower, same results)
VARIANTS = {"fast": (), "synth": ("ABCN_SIM_SYNTH_PATH", "ABCN_AP_ROMS")}


def build(build_dir, dump: bool = False, cxx: str | None = None, variant: str = "fast",
          library: bool = False) -> Path:
    """Compile the csim driver once per source content: the executable (with per-layer taps when
    ``dump``), or with ``library`` the shared library that :func:`simulate` loads (no ``main``)."""
    if dump and library:
        raise UsageError("the per-layer dump is built as an executable, not as the shared library")
    from ..backend.project import ap_types_dir

    b, _ = _project(build_dir)
    ap = str(ap_types_dir())
    cxx = cxx or shutil.which("g++") or "g++"
    if variant not in VARIANTS:
        raise UsageError(f"unknown C-simulation variant {variant!r}", fix="use one of: " + ", ".join(VARIANTS))
    flags = (CXX_FLAGS + CSIM_EXTRA_FLAGS + (["-DABCN_CSIM_DUMP"] if dump else [])
             + (["-fPIC", "-shared", "-DABCN_CSIM_LIB"] if library else [])
             + [f"-D{d}" for d in VARIANTS[variant]])
    host = library and (b / NATIVE_HOST_SOURCE).is_file()  # the host steps in C++ (backend/host_native.py)
    if host:
        flags.append("-ffp-contract=off")  # one IEEE rounding per float32 operation, as onnxruntime
    key = source_hash(b, flags + [toolchain_id(cxx, tuple(CSIM_EXTRA_FLAGS))], ap)
    out_dir = b / ".csim" / key
    exe = out_dir / ("libabcn_csim.so" if library else "csim_driver_dump" if dump else "csim_driver")
    if exe.is_file():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (exe.name + f".tmp{os.getpid()}")
    # the design and its driver as one translation unit, so that the ap_types and kernel headers
    # (most of a small design's front-end time) are parsed once, not once per file; the host
    # steps stay a file of their own (their '#pragma GCC optimize' must not reach other code)
    unity = out_dir / UNITY_SOURCE
    unity_tmp = out_dir / (UNITY_SOURCE + f".tmp{os.getpid()}")
    unity_tmp.write_text("".join(f'#include "../../{s}"\n' for s in DESIGN_SOURCES))
    os.replace(unity_tmp, unity)  # whole, for a concurrent build of the same key too
    sources = [str(unity.relative_to(b))] + ([NATIVE_HOST_SOURCE] if host else [])
    cmd = [cxx, *flags, "-Iinclude", "-Isrc", "-I" + ap, *sources, "-o", str(tmp.resolve())]
    try:
        r = subprocess.run(cmd, cwd=b, capture_output=True, text=True)
    except OSError as e:
        raise CsimError(f"cannot run the C++ compiler: {e.strerror}", cxx, "install g++") from e
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise CsimError("g++ failed to build the C simulation: " + " | ".join(msg[:8])[:2000], str(b))
    os.replace(tmp, exe)
    return exe


@dataclass
class CsimResult:
    output: np.ndarray
    accumulators: np.ndarray
    counts: list[dict] = field(default_factory=list)   # per stage: estimated vs counted cycles
    taps: dict[str, np.ndarray] = field(default_factory=dict)  # lowered tensor name -> csim value
    tap_layers: dict[str, str] = field(default_factory=dict)   # lowered tensor name -> layer id
    seconds: float = 0.0        # end to end: pre graph, packing, the simulation, unpacking, post graph
    sim_seconds: float = 0.0    # inside the driver: the simulation loop over the batch only
    threads: int = 1
    host: str = "onnx"          # where the host steps ran: "native" (tb/csim_host.cpp) or "onnx" (host/*.onnx)

    @property
    def cycles_match(self) -> bool:
        return bool(self.counts) and all(c["match"] for c in self.counts)

    def cycles_table(self) -> str:
        rows = [["stage", "kind", "estimated", "csim", "match"]]
        for c in self.counts:
            rows.append([c["id"], c["kind"], str(c["estimated"]), f"{c['counted']:g}", "yes" if c["match"] else "NO"])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows)


def check_inputs(io: dict, x, finite: bool = True) -> np.ndarray:
    """The float32 input batch of the model, contiguous; ``finite``: refuse NaN / infinite values
    here (the native host path refuses them itself, without another pass over the batch)."""
    shape = tuple(io["input_shape"])
    if not isinstance(x, np.ndarray):
        raise DataError(f"inputs must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise DataError(f"inputs must be float32, got {x.dtype}", fix="convert with x.astype(np.float32) (values in "
                        "the model's input domain, e.g. images in [0, 1])")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise DataError(f"inputs have shape {tuple(x.shape)}, the model takes (batch, {', '.join(map(str, shape))})")
    if x.shape[0] == 0:
        raise DataError("inputs are empty (batch of 0 images)")
    if finite and not np.all(np.isfinite(x)):
        raise DataError(NONFINITE)
    return np.ascontiguousarray(x)


NONFINITE = "inputs contain NaN or infinite values"


def default_threads() -> int:
    """Threads for a batch C simulation: the CPUs this process may use (at most 64)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(64, n))


_DESIGNS: OrderedDict[str, DesignProcess] = OrderedDict()
_DESIGNS_LOCK = threading.Lock()
#: child processes kept waiting for their next batch (the least recently used beyond it are ended),
#: and the shared memory they may hold together (beyond it the least recently used are ended too).
#: A child that is ended costs its next batch a restart (25-45 ms on the 2-core EPYC development
#: machine) and the first touches of its shared memory (about 60 ms for the 63 MB of 20,000 MNIST
#: images, both processes): measured, a 20,000-image TFC call takes 33 ms with its child kept and
#: 120 ms after a restart. scripts/bench_csim.py (and a session verifying fast and synthesis views
#: of six models) rotates over twelve libraries.
KEEP_DESIGNS = 16
KEEP_DESIGN_BYTES = 1 << 30


def _design(path: str) -> DesignProcess:
    """The child process running the csim library ``path`` (one per content-hashed build, started
    on first use and kept for the next batches)."""
    with _DESIGNS_LOCK:
        proc = _DESIGNS.get(path)
        if proc is None:
            proc = _DESIGNS[path] = DesignProcess(path)
        _DESIGNS.move_to_end(path)
        held = sum(p.mapped_bytes for p in _DESIGNS.values())
        for old in list(_DESIGNS)[:-1]:  # least recently used first
            if len(_DESIGNS) <= KEEP_DESIGNS and held <= KEEP_DESIGN_BYTES:
                break
            size = _DESIGNS[old].mapped_bytes
            if _DESIGNS[old].close_if_idle():
                del _DESIGNS[old]
                held -= size
        return proc


_BATCH_ERRORS = {1: "the design did not consume its input", 2: "the design produced too few output words",
                 3: "the design produced too many output words"}
#: the fix printed when a build dir's compiled design crashes or misbehaves
REGENERATE = "the build dir's C++ is broken or was edited; regenerate it: abcn-hw compile MODEL.onnx --out BUILD_DIR --force"


#: the default time limit of a batch (:func:`default_timeout`): a fixed allowance (loading the
#: library, per-call overhead, a busy machine) plus seconds per unit of work (:func:`design_work`).
#: Measured with one thread on the idle 2-core AMD EPYC development machine: the fast paths 0.075 ns
#: per unit (zoo lenet 3x3) to 12 ns (a 196-32-32-10 MLP, where per-call overhead dominates and the
#: fixed allowance covers it); the synthesis view 19 ns (lenet) to 141 ns (the MLP)
TIMEOUT_BASE_S = 120.0
TIMEOUT_S_PER_WORK = {"fast": 2e-9, "synth": 1e-6}


def design_work(b: Path, io: dict) -> int:
    """Work per image: the multiply-accumulates of the matrix layers (MVU cycles x PE x SIMD x
    M x N) plus the estimated cycles of every other stage, from the build dir's estimate
    (report.json); without one, every stage's cycles x 4096."""
    try:
        work = 0
        for la in json.loads((b / "report.json").read_text())["estimate"]["layers"]:
            for kind, cycles in la.get("stages", {"": la["cycles"]}).items():
                lanes = int(la.get("PE", 1)) * int(la.get("SIMD", 1)) * int(la.get("M", 1)) * int(la.get("N", 1)) \
                    if kind.endswith("mvu") else 1
                work += int(cycles) * lanes
        return max(1, work)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return max(1, sum(int(st.get("cycles", 0)) for st in io.get("stages", [])) * 4096)


def default_timeout(b: Path, io: dict, images: int, variant: str = "fast") -> float:
    """Seconds a batch of ``images`` may take before the design is considered hung."""
    return TIMEOUT_BASE_S + images * design_work(b, io) * TIMEOUT_S_PER_WORK.get(variant, TIMEOUT_S_PER_WORK["synth"])


def _timeout_error(b: Path, waited: float, images: int, variant: str) -> CsimError:
    return CsimError(f"the simulated design gave no result for {images} image{'s' if images != 1 else ''} within "
                     f"{round(waited, 1):g} s and was stopped ({variant} C simulation)", str(b),
                     "a design edited by hand may loop forever or deadlock (a stream read that nothing writes): "
                     "regenerate it with 'abcn-hw compile MODEL.onnx --out BUILD_DIR --force'; if it is only "
                     "slow, allow more time with --timeout SECONDS (0: no limit)")


def _run_library(b: Path, io: dict, lib_path: Path, words: np.ndarray, images: int, threads: int,
                 deadline: float | None = None):
    """Simulate the packed input words (host.pack_input_words) in the design's child process:
    (output chunks (words, ch), calls of the top function, [(stage, iterations, calls)], loop seconds)."""
    proc = _design(str(lib_path))
    try:
        in_words, in_ch, out_words, out_ch, stages = proc.sizes(deadline)
        if (images * in_words, in_ch, stages) != (words.shape[0], words.shape[1], len(io["stages"])):
            raise CsimError("the compiled simulation does not match host/io.json", str(b),
                            "recompile the project (abcn-hw compile ... --force)")
        rc, out, counts, seconds = proc.run(words, images, images * out_words * out_ch, 1 + 2 * stages, threads,
                                            deadline)
    except DesignLoadError as e:
        raise CsimError(f"cannot load the compiled C simulation ({e.reason})", str(lib_path),
                        "delete the build dir's .csim folder and run again") from None
    except NoEntryPoints:
        raise CsimError("the project's C-simulation driver has no in-process entry point (it was generated "
                        "by an older abcn-hw)", str(b),
                        "regenerate it: abcn-hw compile MODEL.onnx --out BUILD_DIR --force") from None
    except DesignCrash as e:
        raise CsimError(f"the simulated design crashed ({e.reason})", str(b), REGENERATE) from None
    if rc != 0:
        raise CsimError("the C simulation failed: " + _BATCH_ERRORS.get(rc, f"error {rc}"), str(b))
    calls = int(counts[0])
    counts_raw = [(s, int(counts[1 + 2 * s]), int(counts[2 + 2 * s])) for s in range(stages)]
    return out.reshape(-1, out_ch), calls, counts_raw, seconds


def native_host(b: Path, io: dict) -> tuple[bool, str]:
    """(whether the build dir has the host steps in C++, why not)."""
    rec = io.get("host_native")
    if rec is None:
        return False, "the project was generated by an older abcn-hw"
    if not rec.get("supported"):
        return False, str(rec.get("reason", ""))
    if not (b / NATIVE_HOST_SOURCE).is_file():
        return False, f"{NATIVE_HOST_SOURCE} is missing"
    return True, ""


def _run_native(b: Path, io: dict, lib_path: Path, x: np.ndarray, threads: int, deadline: float | None = None):
    """The whole batch in the design's child process, host steps included (tb/csim_host.cpp):
    (outputs, accumulators, calls of the top function, [(stage, iterations, calls)], loop seconds);
    None when the library has no native host path of this ABI."""
    proc = _design(str(lib_path))
    images = len(x)
    o = io["accel_output"]
    out_size, acc_size = int(np.prod(io["output_shape"])), o["mh"] * o["vectors"]
    stages = len(io["stages"])
    try:
        abi, in_floats, out_floats, acc_floats = proc.host_sizes(deadline)
        if abi != NATIVE_HOST_ABI:
            return None
        if (in_floats, out_floats, acc_floats) != (x[0].size, out_size, acc_size):
            raise CsimError("the compiled simulation does not match host/io.json", str(b),
                            "recompile the project (abcn-hw compile ... --force)")
        rc, out, acc, counts, bad, seconds = proc.run_host(x, out_size, acc_size, 1 + 2 * stages, threads, deadline)
    except DesignLoadError as e:
        raise CsimError(f"cannot load the compiled C simulation ({e.reason})", str(lib_path),
                        "delete the build dir's .csim folder and run again") from None
    except NoEntryPoints:
        return None
    except DesignCrash as e:
        raise CsimError(f"the simulated design crashed ({e.reason})", str(b), REGENERATE) from None
    if rc == 4:
        raise DataError(NONFINITE, f"image {bad}")
    if rc == 5:
        a = io["accel_input"]
        raise CsimError(f"cannot pack the accelerator input: integer input outside {a['lo']}..{a['hi']}", f"image {bad}")
    if rc == 6:
        raise CsimError("the compiled simulation does not match host/io.json", str(b),
                        "recompile the project (abcn-hw compile ... --force)")
    if rc != 0:
        raise CsimError("the C simulation failed: " + _BATCH_ERRORS.get(rc, f"error {rc}"), str(b))
    out = out.reshape(images, *io["output_shape"])
    acc = acc.reshape(images, o["mh"]) if o["vectors"] == 1 else acc.reshape(images, o["mh"], o["vectors"])
    counts_raw = [(s, int(counts[1 + 2 * s]), int(counts[2 + 2 * s])) for s in range(stages)]
    return out, acc, int(counts[0]), counts_raw, seconds


def _run_executable(b: Path, io: dict, exe: Path, payload: bytes, images: int, threads: int, dump: bool,
                    timeout: float | None = None, variant: str = "fast"):
    """Simulate the packed batch with the driver executable and files (the per-layer dump)."""
    with tempfile.TemporaryDirectory(prefix="abcn_csim_") as tmp:
        tmp = Path(tmp)
        (tmp / "in.bin").write_bytes(payload)
        args = [str(exe), str(tmp / "in.bin"), str(tmp / "out.bin"), str(tmp / "counts.txt"), str(threads)]
        if dump:
            args.append(str(tmp))
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the driver
            raise _timeout_error(b, timeout, images, variant) from None
        if r.returncode < 0:
            last = (r.stderr or r.stdout).strip().splitlines()
            raise CsimError(f"the simulated design crashed ({signal_name(r.returncode)}"
                            + (f"; last message: {last[-1][:300]}" if last else "") + ")", str(b), REGENERATE)
        if r.returncode != 0:
            raise CsimError("the C simulation failed: " + (r.stderr or r.stdout).strip()[:1000], str(b))
        n, chunks = host_mod.read_chunks(tmp / "out.bin")
        if n != images:
            raise CsimError(f"the C simulation returned {n} images for {images}")
        lines = (tmp / "counts.txt").read_text().splitlines()
        head = lines[0].split()
        calls = int(head[1])
        sim_seconds = float(head[3]) if len(head) >= 4 else 0.0
        counts_raw = [tuple(map(int, line.split())) for line in lines[1:] if line]
        taps, tap_layers = {}, {}
        if dump:
            for i, tap in enumerate(io["taps"]):
                raw = np.fromfile(tmp / f"tap{i}.bin", dtype="<u8").reshape(-1, (tap["width"] + 63) // 64)
                taps[tap["tensor"]] = host_mod.decode_tap(tap, raw, images)
                tap_layers[tap["tensor"]] = tap["layer"]
    return chunks, calls, counts_raw, sim_seconds, taps, tap_layers


def check_host(build_dir, host: str, dump: bool = False) -> bool:
    """Whether :func:`simulate` with ``host`` (and ``dump``) runs the host steps natively; a
    :class:`UsageError` for an unknown host path or one this build dir cannot take, so that a
    caller can refuse it before any g++ build."""
    b, io = _project(build_dir)
    return _native_host_wanted(b, io, host, dump)


def _native_host_wanted(b: Path, io: dict, host: str, dump: bool) -> bool:
    if host not in HOSTS:
        raise UsageError(f"unknown host path {host!r}", fix="use one of: " + ", ".join(HOSTS))
    native, why = native_host(b, io)
    if host == "native" and (not native or dump):
        raise UsageError("the native host path is not available for this build dir"
                         + (" with the per-layer dump" if native else f": {why}"), str(b),
                         "run with host='auto' or 'onnx'" + ("" if native or dump else
                                                             ", or regenerate it: abcn-hw compile MODEL.onnx "
                                                             "--out BUILD_DIR --force"))
    return native and not dump and host != "onnx"


def simulate(build_dir, x: np.ndarray, dump: bool = False, threads: int | None = None,
             variant: str = "fast", host: str = "auto", timeout: float | None = None) -> CsimResult:
    """Run the whole batch ``x`` through the C simulation.

    The batch runs in the compiled design, a shared library (built once per source content, compiler
    and CPU) loaded by a child process (abcn_hw/sim/design_process.py: a crash of the design is a
    :class:`CsimError` naming the build dir), split over ``threads`` threads (default: the usable CPUs); every kernel
    keeps only local state, so the result does not depend on the thread count (the tests check
    this). ``host``: where the host steps (input quantisation, packing, unpacking, output affine)
    run: "native" in the library (tb/csim_host.cpp, generated from the same constants as
    host/pre.onnx and host/post.onnx and tested equal to them), "onnx" the graphs in onnxruntime
    and the packing in numpy, "auto" native where the build dir has it. With ``dump`` the driver
    executable runs instead (one thread, ONNX host steps) and writes every layer's output stream,
    returned as ``taps``. ``timeout``: seconds the design may take for the batch (None: the
    default scaled to the batch's work, :func:`default_timeout`; 0: no limit); past it the design's
    process is killed and a :class:`CsimError` names the build dir."""
    import time

    b, io = _project(build_dir)
    native = _native_host_wanted(b, io, host, dump)
    x = check_inputs(io, x, finite=not native)
    if threads is None:
        threads = default_threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    threads = 1 if dump else min(threads, 64, len(x))
    if timeout is None:
        timeout = default_timeout(b, io, len(x), variant)
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not 0 <= timeout < float("inf"):
        raise UsageError(f"timeout must be a finite number of seconds >= 0 (0: no limit), got {timeout!r}")
    timeout = float(timeout) or None
    binary = build(b, dump=dump, variant=variant, library=not dump)
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout if timeout else None
    try:
        res = _run_native(b, io, binary, x, threads, deadline) if native else None
    except DesignTimeout as e:
        raise _timeout_error(b, timeout, len(x), variant) from None
    taps, tap_layers = {}, {}
    if res is not None:
        out, acc, calls, counts_raw, sim_seconds = res
    else:
        if native:  # a library without the native entry points: the ONNX host steps, with their checks
            x = check_inputs(io, x)
            native = False
        pre = (b / "host" / "pre.onnx").read_bytes()
        post = (b / "host" / "post.onnx").read_bytes()
        acc_in = host_mod.run_pre(pre, io, x)
        try:
            words = host_mod.pack_input_words(io, acc_in)
        except ValueError as e:
            raise CsimError(f"cannot pack the accelerator input: {e}") from e
        if dump:
            payload = host_mod.input_file(io, words, len(x))
            chunks, calls, counts_raw, sim_seconds, taps, tap_layers = _run_executable(b, io, binary, payload, len(x),
                                                                                      threads, dump, timeout, variant)
        else:
            try:
                chunks, calls, counts_raw, sim_seconds = _run_library(b, io, binary, words, len(x), threads, deadline)
            except DesignTimeout as e:
                raise _timeout_error(b, timeout, len(x), variant) from None
        acc = host_mod.unpack_output_chunks(io, chunks, len(x))
        out = host_mod.run_post(post, acc, io["accel_output"].get("dtype", "int32"))
    seconds = time.perf_counter() - t0
    counts = []
    for st, (idx, iters, ncalls) in zip(io["stages"], counts_raw):
        per_image = iters / len(x)
        counts.append({"id": st["id"], "kind": st["kind"], "estimated": st["cycles"], "counted": per_image,
                       "calls": ncalls,
                       "match": per_image == st["cycles"] and ncalls == calls * st.get("counter_calls", 1)})
    result = CsimResult(out, acc, counts, taps, tap_layers, seconds, sim_seconds, threads,
                        host="native" if native else "onnx")
    try:  # the cycle check of the last run, next to report.json's estimates
        (b / "csim_cycles.json").write_text(json.dumps({"images": len(x), "cycles_match": result.cycles_match,
                                                         "stages": counts}, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass
    return result


def csim(build_dir, x: np.ndarray) -> np.ndarray:
    """The model output for ``x`` (float32, the exported model's input domain), computed by the C
    simulation of the generated design (and the host pre/post graphs)."""
    return simulate(build_dir, x).output
