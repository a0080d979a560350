"""ABC-Net quantizers: weight bases (alpha, B_m), activation bases (beta, H_v), scale grids, STEs."""
from .act import ABCActParams, ActQuantConfig, initial_shifts
from .grid import SCALE_GRIDS, grid_integers, snap_to_grid
from .ste import abc_act_ste, bipolar, hv_ste, sign_ste
from .weight import MAX_BASES, ABCWeightQuant, WeightQuantConfig, base_shifts, least_squares_alpha

__all__ = [
    "ABCActParams", "ActQuantConfig", "initial_shifts", "SCALE_GRIDS", "grid_integers", "snap_to_grid",
    "abc_act_ste", "bipolar", "hv_ste", "sign_ste", "MAX_BASES", "ABCWeightQuant", "WeightQuantConfig", "base_shifts",
    "least_squares_alpha",
]
