"""A tiny C++ printer: indentation-aware line builder plus typed helpers.

Everything printed goes through these helpers; text that came from a model never does (only
derived identifiers, numbers and fixed strings). :meth:`Cpp.comment` refuses anything but a
conservative character set, so a comment cannot be closed or continued by accident.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np

_COMMENT_OK = re.compile(r"[A-Za-z0-9 _.,:;=()\[\]+\-*/<>|&%#'!?{}~^]*")
_IDENT_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*")


def ident(s: str) -> str:
    if not _IDENT_OK.fullmatch(s):
        raise ValueError(f"not a safe C++ identifier: {s!r}")
    return s


def uint_t(w: int) -> str:
    return f"ap_uint<{int(w)}>"


def int_t(w: int) -> str:
    return f"ap_int<{int(w)}>"


def targs(*args) -> str:
    """Template argument list of ints/bools/identifiers."""
    out = []
    for a in args:
        if isinstance(a, bool):
            out.append("true" if a else "false")
        elif isinstance(a, int):
            out.append(str(int(a)) + ("ULL" if a > 0x7FFFFFFF else ""))
        else:
            out.append(ident(a))
    return "<" + ", ".join(out) + ">"


def int_lit(v: int) -> str:
    v = int(v)
    if -(1 << 31) < v < (1 << 31):
        return str(v)
    return f"{v}LL" if v > 0 else f"(-{-v}LL)"


class Cpp:
    def __init__(self, indent: str = "    "):
        self.lines: list[str] = []
        self._ind = 0
        self._unit = indent

    def line(self, s: str = "") -> "Cpp":
        if "\n" in s or "\r" in s:
            raise ValueError("one line at a time")
        self.lines.append((self._unit * self._ind + s) if s else "")
        return self

    def raw(self, s: str) -> "Cpp":  # preprocessor lines: no indentation
        if "\n" in s:
            raise ValueError("one line at a time")
        self.lines.append(s)
        return self

    def comment(self, text: str) -> "Cpp":
        if not _COMMENT_OK.fullmatch(text) or "*/" in text or "/*" in text:
            raise ValueError(f"unsafe comment text: {text!r}")
        return self.line("// " + text if text else "//")

    def pragma(self, text: str) -> "Cpp":
        """An HLS pragma through the ABCN_HLS macro (config.hpp): _Pragma("HLS ...") under
        __SYNTHESIS__, nothing for g++ (which would warn about an unknown pragma under -Wall)."""
        if not re.fullmatch(r"[A-Za-z0-9_ =.]+", text):
            raise ValueError(f"unsafe pragma text: {text!r}")
        return self.line(f"ABCN_HLS({text});")

    @contextmanager
    def block(self, head: str, tail: str = "}"):
        self.line(head + " {")
        self._ind += 1
        yield self
        self._ind -= 1
        self.line(tail)

    def values(self, items: list[str], per_line: int = 8) -> None:
        """Comma-separated values over several lines (no trailing comma)."""
        for i in range(0, len(items), per_line):
            chunk = items[i:i + per_line]
            self.line(", ".join(chunk) + ("," if i + per_line < len(items) else ""))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def nested_init(c: Cpp, arr, leaf, per_line: int = 8, trailing: str = "") -> None:
    """Brace initialiser of a nested list/array: ``leaf(x)`` prints one element."""
    a = np.asarray(arr, dtype=object)
    if a.ndim == 1:
        items = [leaf(x) for x in a]
        if len(items) <= per_line:
            c.line("{" + ", ".join(items) + "}" + trailing)
        else:
            c.line("{")
            c._ind += 1
            c.values(items, per_line)
            c._ind -= 1
            c.line("}" + trailing)
        return
    c.line("{")
    c._ind += 1
    for i in range(a.shape[0]):
        nested_init(c, a[i], leaf, per_line, "," if i + 1 < a.shape[0] else "")
    c._ind -= 1
    c.line("}" + trailing)


def const_params(c: Cpp, name: str, typ: str, fields: list[tuple[str, np.ndarray, int]]) -> None:
    """``static const typ name``: a kernel's parameter struct (ap_int array members), ``fields`` =
    [(member, values in the member's array shape, values per line)] in member order.

    Synthesis (and the synthesis view, ABCN_AP_ROMS): one aggregate initialiser, the ROM contents
    Vitis HLS sees. C simulation: the same values as constant-initialised integer arrays copied into
    the members by one loop each -- an aggregate initialiser of ap_int members is a dynamic
    initialiser with a constructor call per element, which g++ spends most of a large design's
    build optimising."""
    c.raw("#if defined(__SYNTHESIS__) || defined(ABCN_AP_ROMS)")
    c.line(f"static const {typ} {name} = {{")
    c._ind += 1
    for i, (_, values, per_line) in enumerate(fields):
        nested_init(c, values, int_lit, per_line=per_line, trailing="," if i + 1 < len(fields) else "")
    c._ind -= 1
    c.line("};")
    c.raw("#else")
    for member, values, per_line in fields:
        flat = np.asarray(values).reshape(-1)
        c.line(f"static const long long {name}_{member}_init[{max(flat.size, 1)}] = {{")
        c._ind += 1
        c.values([int_lit(v) for v in flat], max(per_line, 16))
        c._ind -= 1
        c.line("};")
    with c.block(f"static {typ} {name}_make()"):
        c.line(f"{typ} p;")
        for member, values, _ in fields:
            shape = np.asarray(values).shape
            loops = " ".join(f"for (unsigned i{d} = 0; i{d} < {n}u; i{d}++)" for d, n in enumerate(shape))
            flat = "i0"
            for d in range(1, len(shape)):
                flat = f"({flat}) * {shape[d]}u + i{d}"
            index = "".join(f"[i{d}]" for d in range(len(shape)))
            c.line(f"{loops} p.{member}{index} = {name}_{member}_init[{flat}];")
        c.line("return p;")
    c.line(f"static const {typ} {name} = {name}_make();")
    c.raw("#endif")
    c.line()
