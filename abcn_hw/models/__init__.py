"""The model zoo: ABC-Net topologies (lenet, tfc/sfc/lfc, cnv, resnet8) with M weight and N
activation bases or in full precision, plus the stock Brevitas binary lenet as peer baseline.

    from abcn_hw.models import build_model, model_from_config
    model = build_model("lenet", 3, 3)                        # ABCModel, training mode
    ckpt = {"config": model.config, "state_dict": model.state_dict()}
    again = model_from_config(ckpt["config"]); again.load_state_dict(ckpt["state_dict"])
"""
from .base import CONFIG_KEYS, FLOAT, INPUT_BITS, ABCModel, LayerFactory
from .registry import MODELS, ModelSpec, build_model, get_spec, list_models, model_from_config
from .stock import STOCK_BINARY, build_stock_binary_model

__all__ = [
    "ABCModel", "CONFIG_KEYS", "FLOAT", "INPUT_BITS", "LayerFactory", "MODELS", "ModelSpec", "STOCK_BINARY",
    "build_model", "build_stock_binary_model", "get_spec", "list_models", "model_from_config",
]
