"""Bit-exact NumPy golden model of sparsemac (docs/spec.md).

Arithmetic rules (section 1): `golden.quant`; activation tables (section 1.1):
`golden.lut`; operations (section 2): `golden.ops`; weight formats (section 3):
`golden.formats`; pruning (section 4): `golden.prune`; performance limits (section 6):
`golden.perf`.  Pure NumPy: never imports ``hw`` or Amaranth.
"""

from .depthwise import depthwise_conv2d
from .eltwise import add_matmul_params, add_params, add_requant
from .format_check import parse_weights, unpack_weights
from .formats import (
    FormatError,
    FormatErrorCode,
    PackedWeights,
    pack_weights,
    packed_size,
)
from .lut import build_lut
from .ops import conv2d, conv_output_shape, im2col, matmul
from .perf import LayerStats, conv_layer_stats, layer_stats, roofline_cycles
from .pool import avg_divide, avgpool2d, global_avgpool, maxpool2d
from .prune import prune
from .quant import apply_lut, requantize, wrap

__all__ = [
    "matmul", "conv2d", "im2col", "conv_output_shape",
    "depthwise_conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "avg_divide",
    "add_requant", "add_params", "add_matmul_params",
    "requantize", "wrap", "apply_lut", "build_lut",
    "pack_weights", "unpack_weights", "parse_weights", "packed_size", "PackedWeights",
    "FormatError", "FormatErrorCode",
    "prune",
    "layer_stats", "conv_layer_stats", "roofline_cycles", "LayerStats",
]
