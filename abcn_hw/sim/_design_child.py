"""Child process that runs a compiled C-simulation library (abcn_hw/sim/design_process.py).

Run as a script (``python -I -S _design_child.py LIB MEM_FD REQ_FD REP_FD``), standard library only,
so it starts in milliseconds. It loads LIB (the build dir's ``libabcn_csim.so``), replies with the
design's sizes, then serves batches: each request names a region of the shared memory file MEM_FD
(input words, output words, counters; or with mode 1, float input images, float outputs,
accumulators, counters and the index of a refused image, for the library's native host path
abcn_csim_host_batch) and the threads; each reply is the driver's return code and the simulation
loop's seconds. If the design crashes (segfault, abort, stack overflow) only this
process dies; the parent sees the pipe close and reports it. EOF on REQ_FD ends the process.
"""
import ctypes
import mmap
import os
import signal
import struct
import sys

#: mapped size, images, input offset, output offset, counts offset, threads, mode (0: packed words,
#: 1: native host path), accumulators offset, refused-image offset (the last two: mode 1 only)
REQUEST = struct.Struct("<QQQQQQQQQ")
REPLY = struct.Struct("<qd")         # return code, seconds of the simulation loop
#: 0 or -1 (no entry points), the five abcn_csim_info values, the four abcn_csim_host_info values
#: (ABI version, floats in / out per image, accumulators per image; zeros without a native host)
INFO = struct.Struct("<qQQQQQQQQQ")


def _read(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def main(argv: list) -> int:
    lib_path, mem_fd, req_fd, rep_fd = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C (and ends this process)
    try:
        lib = ctypes.CDLL(lib_path)
    except OSError as e:
        sys.stderr.write(f"{e}\n")
        return 3
    if not (hasattr(lib, "abcn_csim_batch") and hasattr(lib, "abcn_csim_info")):
        _write(rep_fd, INFO.pack(-1, *([0] * 9)))
        return 0
    lib.abcn_csim_batch.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint,
                                    ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
    lib.abcn_csim_batch.restype = ctypes.c_int
    lib.abcn_csim_info.argtypes = [ctypes.c_uint]
    lib.abcn_csim_info.restype = ctypes.c_ulonglong
    host = [0] * 4
    if hasattr(lib, "abcn_csim_host_batch") and hasattr(lib, "abcn_csim_host_info"):
        lib.abcn_csim_host_info.argtypes = [ctypes.c_uint]
        lib.abcn_csim_host_info.restype = ctypes.c_ulonglong
        lib.abcn_csim_host_batch.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_uint, ctypes.c_void_p, ctypes.POINTER(ctypes.c_double),
                                             ctypes.c_void_p]
        lib.abcn_csim_host_batch.restype = ctypes.c_int
        host = [int(lib.abcn_csim_host_info(i)) for i in range(4)]
    _write(rep_fd, INFO.pack(0, *(int(lib.abcn_csim_info(i)) for i in range(5)), *host))
    mm, base, size = None, 0, 0
    while True:
        req = _read(req_fd, REQUEST.size)
        if not req:
            return 0
        need, images, in_off, out_off, counts_off, threads, mode, acc_off, bad_off = REQUEST.unpack(req)
        if need != size:
            mm = None  # the previous mapping (and the ctypes view of it) is released first
            base = 0
            mm = mmap.mmap(mem_fd, need)
            base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
            size = need
        seconds = ctypes.c_double(0.0)
        if mode == 1 and host[0]:
            rc = lib.abcn_csim_host_batch(base + in_off, images, base + out_off, base + acc_off, threads,
                                          base + counts_off, ctypes.byref(seconds), base + bad_off)
        elif mode == 0:
            rc = lib.abcn_csim_batch(base + in_off, images, base + out_off, threads, base + counts_off,
                                     ctypes.byref(seconds))
        else:
            rc = -1
        _write(rep_fd, REPLY.pack(rc, seconds.value))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
