"""LLIC models: LLIC transforms paired with a baseline's entropy model.

`LLICElic` (registry: `llic-elic`, `llic-elic-compact`) keeps ELIC's hyperprior and
space–channel context model unchanged (context/elic.py), so that only the transforms
differ from ELIC, as the paper compares them ("LLIC-ELIC", −9.47% BD-rate vs VTM-17.0 on
Kodak). `LLICStf` (registry: `llic-stf`, `llic-stf-compact`) does the same with STF's
hyperprior and channel-wise autoregressive model with LRP (context/charm.py,
context/stf_hyper.py; "LLIC-STF", −9.49%), and `LLICTcm` (registry: `llic-tcm`,
`llic-tcm-compact`) with TCM's hyperprior and SWAtten slices (context/swatten.py,
context/tcm_hyper.py; "LLIC-TCM", −10.94%). The transforms are in
models/llic_transforms.py, their blocks in layers/llic_blocks.py.

Training forward (models/base.py): noise for the rate and STE-rounded latents for
synthesis and context (ELIC's two checkerboard passes per group; STF's and TCM's slices
in order, each feeding the support and LRP of later ones); z is rounded to integers (no
median offset).
"""

from collections.abc import Sequence

import flax.linen as nn

from llic_jax.context.charm import (
    STF_TRANSFORM_WIDTHS,
    CharmLatentCodec,
    charm_coding_masks,
)
from llic_jax.context.elic import (
    ElicHyperAnalysis,
    ElicHyperSynthesis,
    ElicLatentCodec,
    elic_coding_masks,
)
from llic_jax.context.stf_hyper import (
    StfHyperAnalysis,
    StfHyperSynthesis,
    stf_hyper_widths,
)
from llic_jax.context.swatten import TCM_TRANSFORM_WIDTHS, SwattenLatentCodec
from llic_jax.context.tcm_hyper import TcmHyperAnalysis, TcmHyperSynthesis
from llic_jax.entropy.factorized import DeepFactorized
from llic_jax.models.base import CompressionModel
from llic_jax.models.llic_transforms import LLICAnalysis, LLICSynthesis

__all__ = ["LLICElic", "LLICModel", "LLICSlices", "LLICStf", "LLICTcm"]


class LLICModel(CompressionModel):
    """LLIC's transform pair plus a latent codec; subclasses choose the entropy model.

    Subclasses set `h_a`, `entropy_bottleneck` and `latent_codec` (and their hyper
    synthesis) in `setup_entropy_model`, and define `hyper_synthesis` and `coding_masks`.

    Attributes:
      N: transform and hyper channels (paper: 192).
      M: latent channels (paper: 320).
      analysis_depths, synthesis_depths: blocks per stage (paper: [1,1,3,1], [1,3,1,1]).
      analysis_kernels, synthesis_kernels: depth-wise kernel per stage.
      num_kernels: SCST kernel-mixture size (our choice, see llic_blocks.SCST).
      dynamic: self-conditioned kernels (True) or static ones (an ablation).
    """

    N: int = 192
    M: int = 320
    analysis_depths: Sequence[int] = (1, 1, 3, 1)
    synthesis_depths: Sequence[int] = (1, 3, 1, 1)
    analysis_kernels: Sequence[int] = (11, 11, 9, 9)
    synthesis_kernels: Sequence[int] = (9, 9, 11, 11)
    num_kernels: int = 4
    dynamic: bool = True

    def setup(self):
        self.g_a = LLICAnalysis(
            self.N, self.M, self.analysis_depths, self.analysis_kernels,
            self.num_kernels, self.dynamic,
        )  # fmt: skip
        self.g_s = LLICSynthesis(
            self.N, self.synthesis_depths, self.synthesis_kernels,
            self.num_kernels, self.dynamic,
        )  # fmt: skip
        self.setup_entropy_model()

    def setup_entropy_model(self):
        raise NotImplementedError

    def analysis(self, x):
        y = self.g_a(x)
        return y, self.h_a(y)

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    def step_parameters(self, hyper, y_hat, step):
        return self.latent_codec.step_parameters(hyper, y_hat, step)

    def train_latents(self, y, hyper, noise_rng):
        return self.latent_codec.train_forward(y, hyper, noise_rng)

    def relaxed_latents(self, y, hyper, quantize, step=1.0):
        return self.latent_codec.relaxed_forward(y, hyper, quantize, step)


class LLICElic(LLICModel):
    """LLIC transforms + ELIC's entropy model.

    Attributes (besides `LLICModel`'s):
      groups: ELIC's uneven channel groups, summing to M.
    """

    groups: Sequence[int] = (16, 16, 32, 64, 192)

    def setup_entropy_model(self):
        self.h_a = ElicHyperAnalysis(self.N)
        self.h_s = ElicHyperSynthesis(self.N)
        self.entropy_bottleneck = DeepFactorized(self.N)
        # ELIC's channel-context widths (224, 128) are for N = 192; scale them with N so
        # the compact sibling's entropy model shrinks with its transforms (our choice).
        widths = (round(224 * self.N / 192), round(128 * self.N / 192))
        self.latent_codec = ElicLatentCodec(
            self.M, tuple(self.groups), 2 * self.N, widths
        )

    def hyper_synthesis(self, z_hat):
        return self.h_s(z_hat)

    @nn.nowrap
    def coding_masks(self, latent_shape):
        return elic_coding_masks(latent_shape, tuple(self.groups))


class LLICSlices(LLICModel):
    """LLIC transforms + a channel-slice codec with LRP (the ChARM family: STF, TCM).

    Subclasses build `h_a`, `h_mean_s`, `h_scale_s`, `entropy_bottleneck` and a
    `CharmLatentCodec` (or subclass) as `latent_codec` in `setup_entropy_model`.

    Attributes (besides `LLICModel`'s):
      num_slices: equal channel slices of y.
      max_support_slices: how many of the first decoded slices each slice sees.
    """

    num_slices: int = 10
    max_support_slices: int = 5

    def hyper_synthesis(self, z_hat):
        return {"mean": self.h_mean_s(z_hat), "scale": self.h_scale_s(z_hat)}

    def step_update(self, hyper, y_hat, symbols, mean, step):
        return self.latent_codec.step_update(hyper, y_hat, symbols, mean, step)

    @nn.nowrap
    def coding_masks(self, latent_shape):
        return charm_coding_masks(latent_shape, self.num_slices)


class LLICStf(LLICSlices):
    """LLIC transforms + STF's entropy model (ChARM slices with LRP, STF hyperprior).

    The paper does not say how LLIC-STF fits STF's slices to M = 320; we take the layout
    of WACNN, the CNN model of the STF repository: 10 slices of 32, support of 5, its
    hyper stacks (h_a 320→…→192, h_mean_s / h_scale_s 192→…→320; context/stf_hyper.py)
    and a factorized prior on the N = 192 channels of z (our choice, DESIGN.md §6).

    Attributes (besides `LLICModel`'s):
      num_slices: equal channel slices of y (WACNN: 10).
      max_support_slices: how many of the first decoded slices each slice sees (5).
    """

    num_slices: int = 10
    max_support_slices: int = 5

    def setup_entropy_model(self):
        analysis_widths, synthesis_widths = stf_hyper_widths(self.N, self.M)
        self.h_a = StfHyperAnalysis(analysis_widths)
        self.h_mean_s = StfHyperSynthesis(synthesis_widths)
        self.h_scale_s = StfHyperSynthesis(synthesis_widths)
        self.entropy_bottleneck = DeepFactorized(self.N)
        # STF's slice-transform widths (224, 176, 128, 64) are for N = 192; scale them
        # with N, as LLICElic does its channel context (our choice).
        widths = tuple(round(w * self.N / 192) for w in STF_TRANSFORM_WIDTHS)
        self.latent_codec = CharmLatentCodec(
            self.M, self.num_slices, self.max_support_slices, widths
        )


class LLICTcm(LLICSlices):
    """LLIC transforms + TCM's entropy model (SWAtten slices with LRP, TCM hyperprior).

    TCM's code fixes M = 320, 5 slices of 64, support 5, SWAtten at 128 channels (head
    dim 16, window 8), z at 192 channels, and hyper blocks of 2N channels whose CTBs use
    head dim 32 and window 4 (notes/baselines.md §3; github.com/jmliu206/LIC_TCM). The
    paper does not say which TCM size LLIC-TCM takes its hyperprior from; we take TCM-L's
    (2N = 256), the model it is compared with (our choice). z has N channels (= TCM's
    192 at N = 192) under a factorized prior, as the other LLIC variants.

    Attributes (besides `LLICModel`'s):
      num_slices: equal channel slices of y (TCM: 5).
      max_support_slices: how many of the first decoded slices each slice sees (5).
      hyper_channels: width of the hyper transforms' blocks (TCM-L: 256).
      hyper_head_dim: channels per head of their Swin halves (TCM: 32).
      hyper_window_size: their window (TCM: 4).
      attention_dim: SWAtten's inner channels (TCM: 128).
      attention_head_dim: channels per head of SWAtten's Swin blocks (TCM: 16).
      window_size: their window (TCM: 8).
    """

    num_slices: int = 5
    max_support_slices: int = 5
    hyper_channels: int = 256
    hyper_head_dim: int = 32
    hyper_window_size: int = 4
    attention_dim: int = 128
    attention_head_dim: int = 16
    window_size: int = 8

    def setup_entropy_model(self):
        hyper = dict(channels=self.hyper_channels, head_dim=self.hyper_head_dim,
                     window_size=self.hyper_window_size)  # fmt: skip
        self.h_a = TcmHyperAnalysis(z_channels=self.N, **hyper)
        self.h_mean_s = TcmHyperSynthesis(features=self.M, **hyper)
        self.h_scale_s = TcmHyperSynthesis(features=self.M, **hyper)
        self.entropy_bottleneck = DeepFactorized(self.N)
        # TCM's slice-transform widths (224, 128) scale with N, as in LLICStf (our
        # choice; at N = 192 they are TCM's).
        widths = tuple(round(w * self.N / 192) for w in TCM_TRANSFORM_WIDTHS)
        self.latent_codec = SwattenLatentCodec(
            self.M,
            self.num_slices,
            self.max_support_slices,
            widths,
            attention_dim=self.attention_dim,
            attention_head_dim=self.attention_head_dim,
            window_size=self.window_size,
        )
