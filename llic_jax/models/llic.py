"""LLIC models: LLIC transforms paired with a baseline's entropy model.

`LLICElic` (registry: `llic-elic`, `llic-elic-compact`) keeps ELIC's hyperprior and
space–channel context model unchanged (context/elic.py), so that only the transforms
differ from ELIC, as the paper compares them ("LLIC-ELIC", −9.47% BD-rate vs VTM-17.0 on
Kodak). The transforms are in models/llic_transforms.py, their blocks in
layers/llic_blocks.py.

Training forward (models/base.py): noise for the rate and STE-rounded latents for
synthesis and context (ELIC's two checkerboard passes per group); z is rounded to
integers (no median offset).
"""

from collections.abc import Sequence

import flax.linen as nn

from llic_jax.context.elic import (
    ElicHyperAnalysis,
    ElicHyperSynthesis,
    ElicLatentCodec,
    elic_coding_masks,
)
from llic_jax.entropy.factorized import DeepFactorized
from llic_jax.models.base import CompressionModel
from llic_jax.models.llic_transforms import LLICAnalysis, LLICSynthesis

__all__ = ["LLICElic"]


class LLICElic(CompressionModel):
    """LLIC transforms + ELIC's entropy model.

    Attributes:
      N: transform and hyper channels (paper: 192).
      M: latent channels (paper: 320).
      groups: ELIC's uneven channel groups, summing to M.
      analysis_depths, synthesis_depths: blocks per stage (paper: [1,1,3,1], [1,3,1,1]).
      analysis_kernels, synthesis_kernels: depth-wise kernel per stage.
      num_kernels: SCST kernel-mixture size (our choice, see llic_blocks.SCST).
      dynamic: self-conditioned kernels (True) or static ones (an ablation).
    """

    N: int = 192
    M: int = 320
    groups: Sequence[int] = (16, 16, 32, 64, 192)
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
        self.h_a = ElicHyperAnalysis(self.N)
        self.h_s = ElicHyperSynthesis(self.N)
        self.entropy_bottleneck = DeepFactorized(self.N)
        # ELIC's channel-context widths (224, 128) are for N = 192; scale them with N so
        # the compact sibling's entropy model shrinks with its transforms (our choice).
        widths = (round(224 * self.N / 192), round(128 * self.N / 192))
        self.latent_codec = ElicLatentCodec(
            self.M, tuple(self.groups), 2 * self.N, widths
        )

    def analysis(self, x):
        y = self.g_a(x)
        return y, self.h_a(y)

    def hyper_synthesis(self, z_hat):
        return self.h_s(z_hat)

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    def step_parameters(self, hyper, y_hat, step):
        return self.latent_codec.step_parameters(hyper, y_hat, step)

    @nn.nowrap
    def coding_masks(self, latent_shape):
        return elic_coding_masks(latent_shape, tuple(self.groups))

    def train_latents(self, y, hyper, noise_rng):
        return self.latent_codec.train_forward(y, hyper, noise_rng)
