"""HLS C++ backend: lowered XNOR-popcount graph -> layer IR -> C++ project (see project.py).

    compile(model, out_dir, folding=None, target_fps=None, clock_mhz=100.0, force=False) -> CompileResult
"""
from .project import CompileResult, compile

__all__ = ["CompileResult", "compile"]
