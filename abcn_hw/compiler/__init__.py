"""The abcn-hw compiler: lower QONNX binary networks to an exact XNOR-popcount ONNX graph.

Public API::

    lower(model) -> (ModelWrapper, LoweringReport)
    lower_to_contract(model, calibration) -> (ModelWrapper, LoweringReport)   (rounding contract)
    lower_file(in_path, out_path, report=False, inputs=None) -> LoweringReport
    compare(exported, lowered, x) -> Comparison
    measure(report, exported, lowered, x) -> LoweringReport
    find_problems(model) / check_support(model)

See docs/lowering.md for the lowered graph's ops and the exactness rule.
"""
from .compare import Comparison, compare
from .contract import lower_to_contract
from .pipeline import lower, lower_file, measure, normalise
from .report import LayerReport, LoweringReport
from .support import Problem, check_support, find_problems

__all__ = ["Comparison", "compare", "lower", "lower_to_contract", "lower_file", "measure", "normalise", "LayerReport", "LoweringReport",
           "Problem", "check_support", "find_problems"]
