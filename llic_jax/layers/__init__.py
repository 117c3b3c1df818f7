"""Neural network layers (Flax Linen)."""

from llic_jax.layers.dwconv import depthwise_conv
from llic_jax.layers.gdn import GDN
from llic_jax.layers.transposed_conv import TransposedConv, depth_to_space
from llic_jax.layers.window_attention import (
    SwinBlock,
    SwinBlockPair,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

__all__ = [
    "GDN",
    "SwinBlock",
    "SwinBlockPair",
    "TransposedConv",
    "WindowAttention",
    "depth_to_space",
    "depthwise_conv",
    "relative_position_index",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]
