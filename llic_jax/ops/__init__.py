"""Quantisation and gradient tricks: pure functions, no parameters."""

from llic_jax.ops.bounds import lower_bound
from llic_jax.ops.quantization import add_uniform_noise, ste_round

__all__ = [
    "add_uniform_noise",
    "lower_bound",
    "ste_round",
]
