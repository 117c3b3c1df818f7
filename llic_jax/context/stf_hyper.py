"""The hyperprior of STF / WACNN: h_a and two hyper-synthesis branches (means, scales).

Layer stacks (notes/baselines.md §1.3, read from Googolxx/STF `compressai/models/cnn.py`
and `stf.py`): all 3×3 convolutions with GELU between layers and none after the last.

  h_a:                 conv s1 → a0, conv s1 → a1, conv **s2** → a2, conv s1 → a3,
                       conv **s2** → a4 = N   (y [B, h, w, M] → z [B, h/4, w/4, N])
  h_mean_s, h_scale_s: conv s1 → s0, subpel ×2 → s1, conv s1 → s2, subpel ×2 → s3,
                       conv s1 → s4 = M       (z_hat → [B, h, w, M]; separate weights)

where `subpel ×2` is a 3×3 conv to 4·s_k channels followed by depth-to-space. The
widths at N = 192, M = 320 are WACNN's, the CNN model of the STF repository and the one
whose latent layout (M = 320, 10 slices of 32) LLIC-STF takes: h_a (320, 288, 256, 224,
192), h_*_s (192, 224, 256, 288, 320), i.e. a linear ramp between M and N in four steps
(`stf_hyper_widths`). The Swin STF model (M = 384) uses the same h_a ramp but h_*_s
widths (240, 288, 336, 384, 384); both layouts can be built by passing widths.

Our choices: GELU is the exact (erf) form, as PyTorch's `nn.GELU()`; the sub-pixel
shuffle is `llic_jax.layers.depth_to_space`, whose channel order (row phase, column
phase, channel) differs from PyTorch's `PixelShuffle` (channel, row phase, column
phase), so ported weights need their output channels permuted; for other N and M the
ramp is rounded to integers.

References:
  Zou, Song, Zhang, "The Devil Is in the Details: Window-based Attention for Image
  Compression", CVPR 2022 (STF and WACNN).
  Minnen, Singh, "Channel-wise autoregressive entropy models for learned image
  compression", ICIP 2020 (separate mean and scale hyper-synthesis branches).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np

from llic_jax.layers import depth_to_space

__all__ = ["StfHyperAnalysis", "StfHyperSynthesis", "stf_hyper_widths"]

_ANALYSIS_STRIDES = (1, 1, 2, 1, 2)
_SYNTHESIS_UPSAMPLE = (False, True, False, True, False)


def _conv3x3(features: int, stride: int = 1) -> nn.Conv:
    """PyTorch `conv3x3`: 3×3 with symmetric padding 1 (stride 2 halves even sizes)."""
    return nn.Conv(features, (3, 3), (stride, stride), ((1, 1), (1, 1)))


def _gelu(x: jax.Array) -> jax.Array:
    return nn.gelu(x, approximate=False)


def stf_hyper_widths(N: int, M: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output widths of the five layers of h_a and of each h_*_s: WACNN's ramp M ↔ N.

    E.g. (192, 320) → ((320, 288, 256, 224, 192), (192, 224, 256, 288, 320)).
    """
    ramp = [int(c) for c in np.rint(np.linspace(M, N, 5))]
    return tuple(ramp), tuple(reversed(ramp))


class StfHyperAnalysis(nn.Module):
    """h_a: five 3×3 convs (strides 1, 1, 2, 1, 2) with GELU between: y → z (×4 down).

    Attributes:
      widths: output channels of the five layers; the last is N, the channels of z.
    """

    widths: Sequence[int] = (320, 288, 256, 224, 192)

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        if len(self.widths) != len(_ANALYSIS_STRIDES):
            raise ValueError(f"h_a has 5 layers, got widths {tuple(self.widths)}")
        x = y
        for k, (width, stride) in enumerate(
            zip(self.widths, _ANALYSIS_STRIDES, strict=True)
        ):
            if k:
                x = _gelu(x)
            x = _conv3x3(width, stride)(x)
        return x


class StfHyperSynthesis(nn.Module):
    """h_mean_s or h_scale_s: conv, subpel ×2, conv, subpel ×2, conv (3×3, GELU between).

    Attributes:
      widths: output channels of the five layers; the last is M, the channels of y.
    """

    widths: Sequence[int] = (192, 224, 256, 288, 320)

    @nn.compact
    def __call__(self, z_hat: jax.Array) -> jax.Array:
        if len(self.widths) != len(_SYNTHESIS_UPSAMPLE):
            raise ValueError(f"h_*_s has 5 layers, got widths {tuple(self.widths)}")
        x = z_hat
        for k, (width, up) in enumerate(
            zip(self.widths, _SYNTHESIS_UPSAMPLE, strict=True)
        ):
            if k:
                x = _gelu(x)
            x = _conv3x3(4 * width if up else width)(x)
            if up:
                x = depth_to_space(x, 2)
        return x
