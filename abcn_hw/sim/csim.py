"""Build (cached) and run the batch C-simulation driver of a generated project."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AbcnError, DataError, UsageError
from . import host


class CsimError(AbcnError):
    """The C simulation could not be built or run."""


CXX_FLAGS = ["-std=c++14", "-O2", "-Wall", "-Werror", "-pthread"]
#: csim-only: the binary runs on the machine that builds it (popcnt etc.); not in the Makefile
CSIM_EXTRA_FLAGS = ["-march=native"]
IMAGES_PER_CALL = 64


def _project(build_dir) -> tuple[Path, dict]:
    b = Path(build_dir)
    io_path = b / "host" / "io.json"
    if not io_path.is_file() or not (b / "src" / "top.cpp").is_file():
        raise UsageError("not an abcn-hw build dir (host/io.json or src/top.cpp missing)", str(b),
                         "run 'abcn-hw compile MODEL.onnx --out BUILD_DIR' first")
    return b, json.loads(io_path.read_text())


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


def build(build_dir, dump: bool = False, cxx: str | None = None) -> Path:
    """Compile the csim driver (with per-layer taps when ``dump``) once per source content."""
    from ..backend.project import ap_types_dir

    b, _ = _project(build_dir)
    ap = str(ap_types_dir())
    cxx = cxx or shutil.which("g++") or "g++"
    flags = CXX_FLAGS + CSIM_EXTRA_FLAGS + (["-DABCN_CSIM_DUMP"] if dump else [])
    key = source_hash(b, flags + [cxx], ap)
    out_dir = b / ".csim" / key
    exe = out_dir / ("csim_driver_dump" if dump else "csim_driver")
    if exe.is_file():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (exe.name + f".tmp{os.getpid()}")
    cmd = [cxx, *flags, "-Iinclude", "-Isrc", "-I" + ap, "src/top.cpp", "tb/csim_driver.cpp", "-o", str(tmp.resolve())]
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
    seconds: float = 0.0

    @property
    def cycles_match(self) -> bool:
        return bool(self.counts) and all(c["match"] for c in self.counts)

    def cycles_table(self) -> str:
        rows = [["stage", "kind", "estimated", "csim", "match"]]
        for c in self.counts:
            rows.append([c["id"], c["kind"], str(c["estimated"]), f"{c['counted']:g}", "yes" if c["match"] else "NO"])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows)


def check_inputs(io: dict, x) -> np.ndarray:
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
    if not np.all(np.isfinite(x)):
        raise DataError("inputs contain NaN or infinite values")
    return np.ascontiguousarray(x)


def simulate(build_dir, x: np.ndarray, dump: bool = False, keep: str | os.PathLike | None = None) -> CsimResult:
    """Run the whole batch ``x`` through the C simulation in one process."""
    import time

    b, io = _project(build_dir)
    x = check_inputs(io, x)
    pre = (b / "host" / "pre.onnx").read_bytes()
    post = (b / "host" / "post.onnx").read_bytes()
    exe = build(b, dump=dump)
    t0 = time.perf_counter()
    acc_in = host.run_pre(pre, io, x)
    try:
        payload = host.pack_input(io, acc_in)
    except ValueError as e:
        raise CsimError(f"cannot pack the accelerator input: {e}") from e
    with tempfile.TemporaryDirectory(prefix="abcn_csim_") as tmp:
        tmp = Path(tmp)
        (tmp / "in.bin").write_bytes(payload)
        # One thread: the kernel library's C-simulation fast path (xnor_mvu.hpp) keeps static caches
        # and is not reentrant; the driver can split a batch over threads for a reentrant library.
        threads = 1
        args = [str(exe), str(tmp / "in.bin"), str(tmp / "out.bin"), str(tmp / "counts.txt"), str(threads)]
        if dump:
            args.append(str(tmp))
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise CsimError("the C simulation failed: " + (r.stderr or r.stdout).strip()[:1000], str(b))
        images, bits = host.read_words(tmp / "out.bin", io["accel_output"]["width"])
        if images != len(x):
            raise CsimError(f"the C simulation returned {images} images for {len(x)}")
        acc = host.unpack_output(io, bits, images)
        lines = (tmp / "counts.txt").read_text().splitlines()
        calls = int(lines[0].split()[1])
        counts_raw = [list(map(int, line.split())) for line in lines[1:] if line]
        taps, tap_layers = {}, {}
        if dump:
            for i, tap in enumerate(io["taps"]):
                raw = np.fromfile(tmp / f"tap{i}.bin", dtype="<u8").reshape(-1, (tap["width"] + 63) // 64)
                taps[tap["tensor"]] = host.decode_tap(tap, raw, images)
                tap_layers[tap["tensor"]] = tap["layer"]
        if keep is not None:
            shutil.copytree(tmp, keep, dirs_exist_ok=True)
    out = host.run_post(post, acc, io["accel_output"].get("dtype", "int32"))
    seconds = time.perf_counter() - t0
    counts = []
    for st, (idx, iters, ncalls) in zip(io["stages"], counts_raw):
        per_image = iters / len(x)
        counts.append({"id": st["id"], "kind": st["kind"], "estimated": st["cycles"], "counted": per_image,
                       "calls": ncalls,
                       "match": per_image == st["cycles"] and ncalls == calls * st.get("counter_calls", 1)})
    result = CsimResult(out, acc, counts, taps, tap_layers, seconds)
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
