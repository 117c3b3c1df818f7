"""Neural network layers (Flax Linen)."""

from llic_jax.layers.dwconv import depthwise_conv
from llic_jax.layers.gdn import GDN
from llic_jax.layers.transposed_conv import TransposedConv, depth_to_space

__all__ = [
    "GDN",
    "TransposedConv",
    "depth_to_space",
    "depthwise_conv",
]
