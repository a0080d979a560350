"""abcn-hw: ABC-Net models from quantization-aware training (Brevitas) to exact FPGA hardware."""

__version__ = "0.1.0"
