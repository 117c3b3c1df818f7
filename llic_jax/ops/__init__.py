"""Quantisation and gradient tricks: pure functions, no parameters."""

from llic_jax.ops.bounds import lower_bound
from llic_jax.ops.quantization import add_uniform_noise, annealed_round, ste_round

__all__ = [
    "add_uniform_noise",
    "annealed_round",
    "lower_bound",
    "ste_round",
]
