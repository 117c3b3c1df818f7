"""Channel-wise autoregressive latent codec (ChARM) with latent residual prediction.

Minnen & Singh's model as STF and WACNN use it. The latent `y` [B, h, w, M] is split
along channels into `num_slices` equal slices, coded one after the other. Slice i is
predicted from the hyperprior and from its *support*: the first `min(i, K)` decoded
slices, K = `max_support_slices` (the first K, not the most recent K, as in the
reference code):

    mean_i  = cc_mean_i (cat[hyper_mean,  y_hat_0 … y_hat_{min(i,K)-1}])
    scale_i = cc_scale_i(cat[hyper_scale, y_hat_0 … y_hat_{min(i,K)-1}])  # raw, no exp
    q_i     = round(y_i − mean_i) + mean_i           # straight-through in training
    y_hat_i = q_i + 0.5·tanh(lrp_i(cat[hyper_mean, support…, q_i]))     # LRP

`hyper_mean` and `hyper_scale` are the outputs of the separate hyper-synthesis branches
h_mean_s and h_scale_s (context/stf_hyper.py). Scales are lower-bounded at 0.11 in the
rate (entropy/gaussian.py) and snapped up to the 64-level table for coding.

Each slice is one coding step of `CompressionModel` (models/base.py): its mask covers
all positions of the slice's channels. `step_update` writes the whole reconstruction
`q_i + LRP_i` of the slice, so a model using this codec overrides the base
`step_update` (which writes only symbols + mean) and delegates to the codec's; encoder
and decoder run the same jitted function on the same integers, so the LRP is
bit-identical on both sides. `mean_context` and `scale_context` build what the slice
transforms see (here the concatenation of hyper features and support); a subclass can
transform them, as TCM's SWAtten codec does (context/swatten.py). `step_update`
recomputes the mean context for the LRP.

Layer stacks (notes/baselines.md §1.4, from Googolxx/STF `cnn.py`/`stf.py`, which
follow Minnen & Singh with other widths): each of cc_mean, cc_scale and lrp is, per
slice, a chain of 3×3 stride-1 convs with GELU between and no final activation:
→ 224 → 176 → 128 → 64 → slice size (32). Inputs: M + (M/S)·min(i, K) channels for
cc_mean / cc_scale, M + (M/S)·min(i + 1, K + 1) for lrp. WACNN's layout is M = 320,
10 slices of 32, K = 5 (the defaults here); STF's M = 384, 12 slices, K = 6.

Training (`train_forward`): the rate uses the noisy latent, `y + u − mean_i` with
u ~ U(−½, ½); supports, LRP and synthesis use the straight-through rounded slices
`ste_round(y_i − mean_i) + mean_i` (CompressAI ≥ 1.2, STF). With `noise_rng=None` the
rate is that of the rounded residuals, and the forward values equal the coding steps.

Our choices: GELU is the exact (erf) form, as PyTorch's `nn.GELU()`; slices must be of
equal size (M divisible by `num_slices`); the hidden widths are configurable
(`transform_widths`) so that smaller models can scale them.

References:
  Minnen, Singh, "Channel-wise autoregressive entropy models for learned image
  compression", ICIP 2020.
  Zou, Song, Zhang, "The Devil Is in the Details: Window-based Attention for Image
  Compression", CVPR 2022 (STF / WACNN: GELU conv stacks, slice layouts).
  Jiang et al., "LLIC: Large Receptive Field Transform Coding with Adaptive Weights for
  Learned Image Compression", IEEE TMM 2024 (LLIC-STF keeps this entropy model).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.gaussian import gaussian_bits, scale_to_index
from llic_jax.ops import add_uniform_noise, ste_round

__all__ = [
    "STF_TRANSFORM_WIDTHS",
    "CharmLatentCodec",
    "SliceTransform",
    "charm_coding_masks",
    "slice_size",
]

# STF's hidden widths of every cc_mean / cc_scale / lrp transform (N = 192 models).
STF_TRANSFORM_WIDTHS = (224, 176, 128, 64)


def slice_size(latent_channels: int, num_slices: int) -> int:
    """Channels per slice, M / num_slices; raises ValueError unless it divides evenly."""
    if num_slices < 1 or latent_channels % num_slices:
        raise ValueError(
            f"M={latent_channels} does not split into {num_slices} equal slices"
        )
    return latent_channels // num_slices


def charm_coding_masks(
    latent_shape: tuple[int, int, int], num_slices: int
) -> tuple[np.ndarray, ...]:
    """The static step masks over [h, w, M], one per slice, in coding order.

    Args:
      latent_shape: (h, w, M) of one latent.
      num_slices: number of equal channel slices.

    Returns:
      Boolean arrays [h, w, M]; mask i is True on channels [i·M/S, (i+1)·M/S).
    """
    h, w, m = latent_shape
    size = slice_size(m, num_slices)
    masks = []
    for i in range(num_slices):
        channels = np.zeros(m, bool)
        channels[i * size : (i + 1) * size] = True
        masks.append(np.broadcast_to(channels, (h, w, m)).copy())
    return tuple(masks)


class SliceTransform(nn.Module):
    """3×3 stride-1 convs, GELU between, none after the last (cc_mean / cc_scale / lrp).

    Attributes:
      widths: hidden widths (STF: 224, 176, 128, 64).
      features: output channels (the slice size).
    """

    widths: Sequence[int]
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.widths:
            x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)))(x)
            x = nn.gelu(x, approximate=False)
        return nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)))(x)


class CharmLatentCodec(nn.Module):
    """ChARM slices + LRP as a stepwise latent codec (one coding step per slice).

    The hyper features are a dict `{"mean": [B, h, w, C], "scale": [B, h, w, C]}`, the
    outputs of h_mean_s and h_scale_s (C = M in STF). Parameters: `cc_mean_transforms_i`,
    `cc_scale_transforms_i`, `lrp_transforms_i` (STF's names), i < num_slices.

    Attributes:
      M: latent channels.
      num_slices: equal channel slices (WACNN: 10 at M = 320; STF: 12 at M = 384).
      max_support_slices: K, how many of the first decoded slices a slice sees
        (WACNN: 5; STF: 6).
      transform_widths: hidden widths of every slice transform (STF: 224, 176, 128, 64).
    """

    M: int = 320
    num_slices: int = 10
    max_support_slices: int = 5
    transform_widths: Sequence[int] = STF_TRANSFORM_WIDTHS

    def setup(self):
        size = slice_size(self.M, self.num_slices)
        if self.max_support_slices < 0:
            raise ValueError("max_support_slices must be ≥ 0")
        widths = tuple(self.transform_widths)
        make = lambda: [SliceTransform(widths, size) for _ in range(self.num_slices)]
        self.cc_mean_transforms = make()
        self.cc_scale_transforms = make()
        self.lrp_transforms = make()

    @nn.nowrap
    def coding_masks(self, latent_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
        """Same as `charm_coding_masks(latent_shape, self.num_slices)`."""
        return charm_coding_masks(latent_shape, self.num_slices)

    @nn.nowrap
    def _bounds(self, i: int) -> tuple[int, int]:
        size = slice_size(self.M, self.num_slices)
        return i * size, (i + 1) * size

    @nn.nowrap
    def _support_channels(self, i: int) -> int:
        """Channels of slice i's support: the first min(i, K) slices."""
        return min(i, self.max_support_slices) * slice_size(self.M, self.num_slices)

    def mean_context(self, hyper: dict, support: jax.Array, i: int) -> jax.Array:
        """What cc_mean_i and lrp_i see of slice i's inputs: cat[hyper_mean, support].

        A subclass may transform it (TCM's SWAtten, context/swatten.py).
        """
        del i
        return jnp.concatenate([hyper["mean"], support], -1)

    def scale_context(self, hyper: dict, support: jax.Array, i: int) -> jax.Array:
        """What cc_scale_i sees of slice i's inputs: cat[hyper_scale, support]."""
        del i
        return jnp.concatenate([hyper["scale"], support], -1)

    def slice_distribution(
        self, hyper: dict, support: jax.Array, i: int
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(raw scale, mean, mean context) of slice i from its support [B, h, w, ·].

        Scale and mean are [B, h, w, M/S]; the mean context (`mean_context`) is returned
        for the slice's LRP.
        """
        context = self.mean_context(hyper, support, i)
        mean = self.cc_mean_transforms[i](context)
        scale = self.cc_scale_transforms[i](self.scale_context(hyper, support, i))
        return scale, mean, context

    def slice_lrp(self, context: jax.Array, quantized: jax.Array, i: int) -> jax.Array:
        """Latent residual prediction 0.5·tanh(lrp_i(cat[mean context, q_i]))."""
        x = jnp.concatenate([context, quantized], -1)
        return 0.5 * jnp.tanh(self.lrp_transforms[i](x))

    def step_distribution(
        self, hyper: dict, y_hat: jax.Array, step: int
    ) -> tuple[jax.Array, jax.Array]:
        """Continuous (scale, mean) of coding step (slice) `step`, both shaped like y.

        Reads only the support channels of `y_hat` (slices < step). Outside the slice
        the scale is 1 and the mean 0.
        """
        start, stop = self._bounds(step)
        support = y_hat[..., : self._support_channels(step)]
        scale, mean, _ = self.slice_distribution(hyper, support, step)
        pad = ((0, 0), (0, 0), (0, 0), (start, self.M - stop))
        return jnp.pad(scale, pad, constant_values=1.0), jnp.pad(mean, pad)

    def step_parameters(
        self, hyper: dict, y_hat: jax.Array, step: int
    ) -> tuple[jax.Array, jax.Array]:
        """(int32 scale-table index, mean) for coding step `step`, both shaped like y."""
        scale, mean = self.step_distribution(hyper, y_hat, step)
        return scale_to_index(scale), mean

    def step_update(
        self,
        hyper: dict,
        y_hat: jax.Array,
        symbols: jax.Array,
        mean: jax.Array,
        step: int,
    ) -> jax.Array:
        """Writes slice `step`'s reconstruction, symbols + mean + LRP, into `y_hat`.

        Args:
          hyper: the hyper features.
          y_hat: [B, h, w, M], the slices < step decoded (the rest is ignored).
          symbols: int32 shaped like y, valid on the slice's channels.
          mean: the step's means (from `step_parameters`), shaped like y.
          step: slice index.
        """
        start, stop = self._bounds(step)
        quantized = symbols[..., start:stop].astype(y_hat.dtype) + mean[..., start:stop]
        support = y_hat[..., : self._support_channels(step)]
        lrp = self.slice_lrp(self.mean_context(hyper, support, step), quantized, step)
        return y_hat.at[..., start:stop].set(quantized + lrp)

    def ste_forward(
        self, y: jax.Array, hyper: dict
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """All slices in order with straight-through rounding: (y_hat, scale, mean).

        In the forward values this equals the coding steps run in order (the eval path).
        """
        y_hat, scale, mean, _ = self._slices_in_order(y, hyper, ste_round)
        return y_hat, scale, mean

    def _slices_in_order(self, y: jax.Array, hyper: dict, quantize):
        """(y_hat with LRP, scale, mean, quantised residuals), `quantize` rounding."""
        y_hats, scales, means, residuals = [], [], [], []
        for i in range(self.num_slices):
            start, stop = self._bounds(i)
            k = min(i, self.max_support_slices)
            support = jnp.concatenate([y[..., :0], *y_hats[:k]], -1)
            scale, mean, context = self.slice_distribution(hyper, support, i)
            residual = quantize(y[..., start:stop] - mean)
            quantized = residual + mean
            y_hats.append(quantized + self.slice_lrp(context, quantized, i))
            scales.append(scale)
            means.append(mean)
            residuals.append(residual)
        cat = lambda xs: jnp.concatenate(xs, axis=-1)
        return cat(y_hats), cat(scales), cat(means), cat(residuals)

    def train_forward(
        self, y: jax.Array, hyper: dict, noise_rng: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """Training forward: (STE-rounded y_hat with LRP, bits [B]).

        Args:
          y: latent [B, h, w, M].
          hyper: `{"mean", "scale"}` from the hyper-synthesis branches.
          noise_rng: key for the U(−½, ½) noise of the rate term; None rates the
            rounded residuals instead (a deterministic forward).

        Returns:
          y_hat for synthesis, and the rate −Σ log2 p of each batch element under the
          continuous scales lower-bounded at 0.11.
        """
        y_hat, scale, mean = self.ste_forward(y, hyper)
        if noise_rng is None:
            residual = jnp.round(y - mean)
        else:
            residual = add_uniform_noise(y, noise_rng) - mean
        return y_hat, gaussian_bits(residual, scale).sum(axis=(1, 2, 3))

    def relaxed_forward(self, y: jax.Array, hyper: dict, quantize, step=1.0):
        """(y_hat, bits [B]) with `quantize` standing in for every rounding.

        As `ElicLatentCodec.relaxed_forward`: the rate is that of the quantised residuals
        themselves, so a differentiable `quantize` makes the whole forward smooth in `y`;
        `step` is the quantisation step Δ there too.
        """
        y_hat, scale, _, residual = self._slices_in_order(
            y, hyper, lambda r: step * quantize(r / step)
        )
        return y_hat, gaussian_bits(residual / step, scale / step).sum(axis=(1, 2, 3))
