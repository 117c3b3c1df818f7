"""LLIC's analysis and synthesis transforms (g_a, g_s).

Layout (the paper, via notes/llic_paper.md): g_a has 4 stages, each a ×2 down-sampling
followed by `depths = [1, 1, 3, 1]` blocks of (STB → CTB) with depth-wise kernels
`[11, 11, 9, 9]`; N = 192 channels, the last stage at M = 320. g_s mirrors it: stages of
`[1, 3, 1, 1]` blocks of (CTB → STB) with kernels `[9, 9, 11, 11]`, each followed by a ×2
up-sampling.

Our choices (the paper does not give them): down-sampling is a strided convolution, 5×5
from RGB and 3×3 between stages (pad k//2, as PyTorch); up-sampling a stride-2
`TransposedConv`, 3×3 between stages and 5×5 to RGB, so that every output pixel mixes
several latent positions (a 2×2 patch split would leave block edges the last stage could
not smooth). The blocks are in layers/llic_blocks.py.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from llic_jax.layers import TransposedConv
from llic_jax.layers.llic_blocks import CTB, STB

__all__ = ["LLICAnalysis", "LLICSynthesis"]


def _down(features: int, kernel: int) -> nn.Conv:
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), (2, 2), ((pad, pad), (pad, pad)))


class LLICAnalysis(nn.Module):
    """g_a: image [B, H, W, 3] → latent y [B, H/16, W/16, M].

    Attributes:
      N: channels of the first three stages.
      M: channels of the last stage (the latent).
      depths: blocks (STB → CTB) per stage.
      kernel_sizes: depth-wise kernel of the STBs per stage.
      num_kernels: kernel mixture size of each SCST (see llic_blocks.SCST).
      dynamic: self-conditioned (True) or static large kernels.
    """

    N: int = 192
    M: int = 320
    depths: Sequence[int] = (1, 1, 3, 1)
    kernel_sizes: Sequence[int] = (11, 11, 9, 9)
    num_kernels: int = 4
    dynamic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for stage, (depth, k) in enumerate(
            zip(self.depths, self.kernel_sizes, strict=True)
        ):
            last = stage == len(self.depths) - 1
            x = _down(self.M if last else self.N, 5 if stage == 0 else 3)(x)
            for _ in range(depth):
                x = STB(k, self.num_kernels, self.dynamic)(x)
                x = CTB()(x)
        return x


class LLICSynthesis(nn.Module):
    """g_s: latent y_hat [B, h, w, M] → image [B, 16h, 16w, 3] (not clipped).

    Attributes mirror `LLICAnalysis`; `depths` and `kernel_sizes` run from the latent up.
    """

    N: int = 192
    depths: Sequence[int] = (1, 3, 1, 1)
    kernel_sizes: Sequence[int] = (9, 9, 11, 11)
    num_kernels: int = 4
    dynamic: bool = True

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        x = y
        for stage, (depth, k) in enumerate(
            zip(self.depths, self.kernel_sizes, strict=True)
        ):
            last = stage == len(self.depths) - 1
            for _ in range(depth):
                x = CTB()(x)
                x = STB(k, self.num_kernels, self.dynamic)(x)
            x = TransposedConv(3 if last else self.N, 5 if last else 3)(x)
        return x
