"""Latent codecs: entropy models of y that code it in a sequence of static-mask steps."""

from llic_jax.context.charm import (
    STF_TRANSFORM_WIDTHS,
    CharmLatentCodec,
    SliceTransform,
    charm_coding_masks,
    slice_size,
)
from llic_jax.context.elic import (
    ElicHyperAnalysis,
    ElicHyperSynthesis,
    ElicLatentCodec,
    aggregation_widths,
    anchor_mask,
    checkerboard_kernel_mask,
    elic_coding_masks,
)
from llic_jax.context.stf_hyper import (
    StfHyperAnalysis,
    StfHyperSynthesis,
    stf_hyper_widths,
)
from llic_jax.context.swatten import (
    TCM_TRANSFORM_WIDTHS,
    SWAtten,
    SwattenLatentCodec,
)
from llic_jax.context.tcm_hyper import TcmHyperAnalysis, TcmHyperSynthesis

__all__ = [
    "STF_TRANSFORM_WIDTHS",
    "TCM_TRANSFORM_WIDTHS",
    "CharmLatentCodec",
    "ElicHyperAnalysis",
    "ElicHyperSynthesis",
    "ElicLatentCodec",
    "SliceTransform",
    "StfHyperAnalysis",
    "StfHyperSynthesis",
    "SWAtten",
    "SwattenLatentCodec",
    "TcmHyperAnalysis",
    "TcmHyperSynthesis",
    "aggregation_widths",
    "anchor_mask",
    "charm_coding_masks",
    "checkerboard_kernel_mask",
    "elic_coding_masks",
    "slice_size",
    "stf_hyper_widths",
]
