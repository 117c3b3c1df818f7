"""Latent codecs: entropy models of y that code it in a sequence of static-mask steps."""

from llic_jax.context.elic import (
    ElicHyperAnalysis,
    ElicHyperSynthesis,
    ElicLatentCodec,
    aggregation_widths,
    anchor_mask,
    checkerboard_kernel_mask,
    elic_coding_masks,
)

__all__ = [
    "ElicHyperAnalysis",
    "ElicHyperSynthesis",
    "ElicLatentCodec",
    "aggregation_widths",
    "anchor_mask",
    "checkerboard_kernel_mask",
    "elic_coding_masks",
]
