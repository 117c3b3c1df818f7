"""TCM's channel-wise latent codec with SWAtten: ChARM slices whose inputs pass attention.

TCM (Liu, Sun, Katto, CVPR 2023) keeps Minnen & Singh's slices with latent residual
prediction (context/charm.py) and puts a Swin-window attention module, SWAtten, in front
of every slice's mean and scale transforms. For slice i, with support = the first
min(i, K) decoded slices (K = `max_support_slices`):

    mean_context_i  = atten_mean_i (cat[hyper_mean,  support])   # d_i channels in and out
    scale_context_i = atten_scale_i(cat[hyper_scale, support])
    mean_i  = cc_mean_i (mean_context_i)
    scale_i = cc_scale_i(scale_context_i)                        # raw, lower-bounded at 0.11
    y_hat_i = q_i + 0.5·tanh(lrp_i(cat[mean_context_i, q_i]))    # LRP on the attended means

with d_i = M + (M/S)·min(i, K). Everything else (coding steps, straight-through
training, the rate) is `CharmLatentCodec`'s; this module adds the attention through its
`mean_context` / `scale_context` hooks.

SWAtten (TCM `models/tcm.py::SWAtten`, a CompressAI `AttentionBlock` whose non-local
branch is a Swin block pair), with C = `attention_dim`:

    x = in_conv(input)                     # 1×1, d_i → C; the residual is taken here
    z = SwinBlockPair(x)                   # W-MSA then SW-MSA block, window 8, head dim 16
    a = RU(RU(RU(x)))                      # residual units, see `ResidualUnit`
    b = conv1x1(RU(RU(RU(z))))             # C → C
    out_conv(a·σ(b) + x)                   # 1×1, C → d_i

Numbers from TCM's code (notes/baselines.md §3.3): M = 320, 5 slices of 64, K = 5,
C = 128, head dim 16 (8 heads), window 8 (shift 4); cc_mean / cc_scale / lrp are 3×3
convs d_i → 224 → 128 → 64 with GELU between (lrp's input M + 64·min(i + 1, K + 1));
parameters: atten_mean 4.26 M, atten_scale 4.26 M, cc_mean 6.18 M, cc_scale 6.18 M,
lrp 6.82 M (27.70 M; the test asserts the exact count of our port).

Our choices: initialisers are Flax's defaults (lecun-normal convs), the Swin layers'
are Swin's (layers/window_attention.py; TCM keeps PyTorch's defaults); the Swin blocks
zero-pad maps to a multiple of the window and always crop back (TCM's SwinBlock
centre-pads maps no larger than the window and never crops, a quirk), and an axis that
is a single window is not shifted; shifted-window logits are masked with −100 (TCM:
−inf). `step_update` runs atten_mean_i again for the LRP (the coding contract of
models/base.py passes only the means between the two steps), which costs one more
SWAtten per slice when coding.

References:
  Liu, Sun, Katto, "Learned Image Compression with Mixed Transformer-CNN
  Architectures", CVPR 2023; code: github.com/jmliu206/LIC_TCM, `models/tcm.py`.
  Cheng et al., "Learned Image Compression with Discretized Gaussian Mixture
  Likelihoods and Attention Modules", CVPR 2020 (the attention block, CompressAI
  `layers.AttentionBlock`).
  Jiang et al., "LLIC: Large Receptive Field Transform Coding with Adaptive Weights for
  Learned Image Compression", IEEE TMM 2024 (LLIC-TCM keeps this entropy model).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from llic_jax.context.charm import CharmLatentCodec
from llic_jax.layers.window_attention import SwinBlockPair

__all__ = ["TCM_TRANSFORM_WIDTHS", "SWAtten", "ResidualUnit", "SwattenLatentCodec"]

# TCM's hidden widths of every cc_mean / cc_scale / lrp transform.
TCM_TRANSFORM_WIDTHS = (224, 128)


class ResidualUnit(nn.Module):
    """CompressAI's attention-block unit: relu(x + 1×1(relu(3×3(relu(1×1(x)))))).

    The bottleneck is half the channels (C → C/2 → C/2 → C).
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        h = nn.relu(nn.Conv(channels // 2, (1, 1))(x))
        h = nn.relu(nn.Conv(channels // 2, (3, 3), padding=((1, 1), (1, 1)))(h))
        return nn.relu(x + nn.Conv(channels, (1, 1))(h))


class SWAtten(nn.Module):
    """TCM's Swin-window attention module: [B, h, w, d] → [B, h, w, d] (module docstring).

    Parameter names follow TCM: `in_conv`, `non_local_block` (`w_block`, `sw_block`),
    `conv_a_{0,1,2}`, `conv_b_{0,1,2}` (units) and `conv_b_3` (the 1×1), `out_conv`.

    Attributes:
      dim: C, the inner channels (TCM's `inter_dim`: 128).
      head_dim: channels per attention head (TCM: 16).
      window_size: attention window (TCM: 8).
    """

    dim: int = 128
    head_dim: int = 16
    window_size: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        x = nn.Conv(self.dim, (1, 1), name="in_conv")(x)
        z = SwinBlockPair(
            self.dim, self.window_size, head_dim=self.head_dim, name="non_local_block"
        )(x)
        a = x
        for k in range(3):
            a = ResidualUnit(name=f"conv_a_{k}")(a)
        b = z
        for k in range(3):
            b = ResidualUnit(name=f"conv_b_{k}")(b)
        b = nn.Conv(self.dim, (1, 1), name="conv_b_3")(b)
        return nn.Conv(features, (1, 1), name="out_conv")(a * nn.sigmoid(b) + x)


class SwattenLatentCodec(CharmLatentCodec):
    """ChARM slices + LRP with a SWAtten in front of every slice's mean and scale nets.

    Parameters: those of `CharmLatentCodec` plus `atten_mean_i`, `atten_scale_i` (TCM's
    names), i < num_slices. Hyper features `{"mean", "scale"}` [B, h, w, M] come from
    TCM's h_mean_s / h_scale_s (context/tcm_hyper.py).

    Attributes (besides `CharmLatentCodec`'s; defaults are TCM's):
      M: latent channels (320).
      num_slices: equal channel slices (5).
      max_support_slices: K (5).
      transform_widths: hidden widths of cc_mean / cc_scale / lrp (224, 128).
      attention_dim: SWAtten's inner channels (128).
      attention_head_dim: channels per head of its Swin blocks (16).
      window_size: their window (8).
    """

    num_slices: int = 5
    transform_widths: Sequence[int] = TCM_TRANSFORM_WIDTHS
    attention_dim: int = 128
    attention_head_dim: int = 16
    window_size: int = 8

    def setup(self):
        super().setup()
        make = lambda: [
            SWAtten(self.attention_dim, self.attention_head_dim, self.window_size)
            for _ in range(self.num_slices)
        ]
        self.atten_mean = make()
        self.atten_scale = make()

    def mean_context(self, hyper: dict, support: jax.Array, i: int) -> jax.Array:
        """atten_mean_i(cat[hyper_mean, support]): the input of cc_mean_i and lrp_i."""
        return self.atten_mean[i](super().mean_context(hyper, support, i))

    def scale_context(self, hyper: dict, support: jax.Array, i: int) -> jax.Array:
        """atten_scale_i(cat[hyper_scale, support]): the input of cc_scale_i."""
        return self.atten_scale[i](super().scale_context(hyper, support, i))
