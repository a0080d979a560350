"""Faithful QONNX export of ABC models and the export-fidelity check."""
from .export import IR_VERSION, QONNX_DOMAIN, Fidelity, check_fidelity, execute_qonnx, export_to_qonnx, normalise_opsets

__all__ = ["IR_VERSION", "QONNX_DOMAIN", "Fidelity", "check_fidelity", "execute_qonnx", "export_to_qonnx", "normalise_opsets"]
