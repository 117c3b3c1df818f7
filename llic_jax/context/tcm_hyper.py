"""The hyperprior of TCM: h_a and two hyper-synthesis branches built of conv–transformer blocks.

Layer stacks (notes/baselines.md §3.2, read from jmliu206/LIC_TCM `models/tcm.py`), with
C = `channels` (TCM's 2N: 128 / 192 / 256 for TCM-S / M / L) and CompressAI's residual
blocks (`compressai/layers/layers.py`):

  h_a:                 ResidualBlockWithStride(M → C, ×2 down), 2 × ConvTransBlock,
                       conv3x3 C → 192 stride 2    (y [B, h, w, M] → z [B, h/4, w/4, 192])
  h_mean_s, h_scale_s: ResidualBlockUpsample(192 → C, ×2 up), 2 × ConvTransBlock,
                       subpel_conv3x3 C → M ×2     (z_hat → [B, h, w, M]; separate weights)

The ConvTransBlocks (TCM's `ConvTransBlock`, CTB) split C in halves: a 1×1 conv C → C,
then a convolutional half `x + ResidualBlock(x)` (so the identity is added twice, as in
TCM) and a Swin half (W-MSA in the first block, SW-MSA in the second; head dim 32,
window 4 at the hyper level), concatenated, a 1×1 conv C → C and the block's residual.

  ResidualBlock:           conv3x3, LeakyReLU, conv3x3, LeakyReLU, + x
  ResidualBlockWithStride: conv3x3 s2, LeakyReLU, conv3x3, GDN, + conv1x1 s2 (x)
  ResidualBlockUpsample:   subpel ×2, LeakyReLU, conv3x3, IGDN, + subpel ×2 (x)
  subpel_conv3x3 ×r:       conv3x3 to r²·out channels, then depth-to-space

LeakyReLU has slope 0.01 (PyTorch's default). TCM fixes z at 192 channels (= N of the
LLIC models, which use N for z; `z_channels`).

Our choices: the sub-pixel shuffle is `llic_jax.layers.depth_to_space`, whose channel
order differs from PyTorch's `PixelShuffle` (ported weights need their output channels
permuted, as in context/stf_hyper.py); the Swin halves are layers/window_attention.py's
blocks (zero-padding to the window and cropping back, −100 shift mask; TCM never pads at
this level because its codec pads images to a multiple of 128, and fills −inf); Flax's
default initialisers.

References:
  Liu, Sun, Katto, "Learned Image Compression with Mixed Transformer-CNN
  Architectures", CVPR 2023; code: github.com/jmliu206/LIC_TCM, `models/tcm.py`.
  Cheng et al., "Learned Image Compression with Discretized Gaussian Mixture
  Likelihoods and Attention Modules", CVPR 2020 (the residual blocks).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from llic_jax.layers import GDN, depth_to_space
from llic_jax.layers.window_attention import SwinBlock

__all__ = [
    "ConvTransBlock",
    "ResidualBlock",
    "ResidualBlockUpsample",
    "ResidualBlockWithStride",
    "TcmHyperAnalysis",
    "TcmHyperSynthesis",
]


def _conv(features: int, kernel: int = 3, stride: int = 1, name: str | None = None):
    """PyTorch `conv3x3` / `conv1x1`: padding kernel//2 (stride 2 halves even sizes)."""
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), ((pad, pad),) * 2,
                   name=name)  # fmt: skip


class SubpelConv(nn.Module):
    """CompressAI's `subpel_conv3x3`: 3×3 conv to r²·features, then depth-to-space ×r."""

    features: int
    factor: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return depth_to_space(_conv(self.factor**2 * self.features)(x), self.factor)


class ResidualBlock(nn.Module):
    """conv3x3, LeakyReLU, conv3x3, LeakyReLU, plus the input (same channels)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.leaky_relu(_conv(x.shape[-1])(x))
        return nn.leaky_relu(_conv(x.shape[-1])(h)) + x


class ResidualBlockWithStride(nn.Module):
    """×2 down: GDN(conv3x3(LeakyReLU(conv3x3 s2(x)))) + conv1x1 s2(x)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.leaky_relu(_conv(self.features, stride=2)(x))
        h = GDN()(_conv(self.features)(h))
        return h + _conv(self.features, 1, 2, name="skip")(x)


class ResidualBlockUpsample(nn.Module):
    """×2 up: IGDN(conv3x3(LeakyReLU(subpel(x)))) + subpel(x), separate subpel weights."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.leaky_relu(SubpelConv(self.features, name="subpel_conv")(x))
        h = GDN(inverse=True)(_conv(self.features)(h))
        return h + SubpelConv(self.features, name="upsample")(x)


class ConvTransBlock(nn.Module):
    """TCM's CTB on [B, h, w, C]: a residual conv half and a Swin half, fused by 1×1 convs.

    Attributes:
      head_dim: channels per head of the Swin half (C/2 channels).
      window_size: its window.
      shift: SW-MSA instead of W-MSA.
    """

    head_dim: int = 32
    window_size: int = 4
    shift: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        if channels % 2:
            raise ValueError(f"a ConvTransBlock splits even channels, got {channels}")
        half = channels // 2
        h = _conv(channels, 1, name="conv1_1")(x)
        conv_x, trans_x = h[..., :half], h[..., half:]
        conv_x = ResidualBlock(name="conv_block")(conv_x) + conv_x
        trans_x = SwinBlock(
            half, self.window_size, head_dim=self.head_dim, shift=self.shift,
            name="trans_block",
        )(trans_x)  # fmt: skip
        fused = _conv(channels, 1, name="conv1_2")(jnp.concatenate([conv_x, trans_x], -1))
        return x + fused


class _TcmHyperTransform(nn.Module):
    """The attributes both hyper transforms share.

    Attributes:
      channels: C, width of the blocks (TCM-L: 256).
      head_dim: channels per head of the CTBs' Swin halves (TCM: 32).
      window_size: their window (TCM: 4).
      depth: CTBs (TCM: 2).
    """

    channels: int = 256
    head_dim: int = 32
    window_size: int = 4
    depth: int = 2

    def blocks(self, x: jax.Array) -> jax.Array:
        """`depth` CTBs alternating W-MSA and SW-MSA."""
        for k in range(self.depth):
            x = ConvTransBlock(
                self.head_dim, self.window_size, shift=bool(k % 2), name=f"ctb_{k}"
            )(x)
        return x


class TcmHyperAnalysis(_TcmHyperTransform):
    """h_a: y [B, h, w, M] → z [B, h/4, w/4, z_channels].

    Attributes (besides channels, head_dim, window_size, depth):
      z_channels: channels of z (TCM: 192).
    """

    z_channels: int = 192

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        x = self.blocks(ResidualBlockWithStride(self.channels, name="down")(y))
        return _conv(self.z_channels, stride=2, name="out")(x)


class TcmHyperSynthesis(_TcmHyperTransform):
    """h_mean_s or h_scale_s: z_hat [B, h/4, w/4, ·] → [B, h, w, features].

    Attributes (besides channels, head_dim, window_size, depth):
      features: output channels, M (320).
    """

    features: int = 320

    @nn.compact
    def __call__(self, z_hat: jax.Array) -> jax.Array:
        x = self.blocks(ResidualBlockUpsample(self.channels, name="up")(z_hat))
        return SubpelConv(self.features, name="out")(x)
