"""abcn-hw: ABC-Net models from quantization-aware training (Brevitas) to exact FPGA hardware.

The Python API (:mod:`abcn_hw.api`; the same calls the ``abcn-hw`` commands make)::

    import abcn_hw as ah

    run = ah.fit("lenet", out="runs/l33", weight_bases=3, act_bases=3, epochs=2)   # abcn-hw train
    hw = ah.compile("runs/l33/model.onnx", out="build/l33")                        # abcn-hw compile
    x, y = ah.test_images("mnist", limit=500)
    ver = ah.verify("runs/l33/model.onnx", "build/l33", x)                         # abcn-hw verify
    print(ver)              # the command's text output; ver.to_dict() is its --json output
    assert ver.ok and ver.bit_exact

Names are imported on first use, so ``import abcn_hw`` stays fast.
"""

__version__ = "0.1.0"

#: the API names ``import abcn_hw as ah`` offers (all defined in abcn_hw.api)
API = ("fit", "fit_config", "export", "evaluate", "lower", "summary", "compile", "csim", "verify", "run_flow",
       "flow_config", "flow_report", "test_images", "design_space", "Result", "TrainResult", "ExportResult",
       "EvalResult", "LowerResult", "SummaryResult", "CompileResult", "CsimResult", "VerifyResult", "FlowResult",
       "DesignSpace")


def __getattr__(name: str):
    if name in API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'abcn_hw' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(API))


__all__ = ["__version__", *API]
