"""ELIC's space–channel context model (SCCTX) as a stepwise latent codec, plus its hyper transforms.

The latent `y` [B, h, w, M] is split along channels into unevenly sized groups
(16, 16, 32, 64, 192 at M=320). Group k is coded in two checkerboard passes: first the
*anchors* (positions with (i+j) even), then the *non-anchors*. Each pass predicts a
(scale, mean) per element from three sources, concatenated and fed to a 1×1 "parameter
aggregation" net:

  * spatial context: a checkerboard-masked 5×5 conv over the group's decoded anchors
    (zeros in the anchor pass);
  * channel context (k ≥ 1): a 5×5 conv stack over ALL earlier, fully decoded groups;
  * the hyperprior features h_s(z_hat) [B, h, w, 2N].

That gives 2·len(groups) coding steps for `CompressionModel` (models/base.py), ordered
g0-anchor, g0-non-anchor, g1-anchor, …. ELIC has no latent residual prediction, so the
base class's `step_update` (y_hat ← symbols + mean on the step's mask) is all it needs.

A model plugs the codec in through thin methods (sketch; see tests/context/elic_test.py)::

    class ElicModel(CompressionModel):
        N: int = 192
        M: int = 320
        groups: tuple[int, ...] = (16, 16, 32, 64, 192)

        def setup(self):
            self.g_a, self.g_s = ..., ...  # ×16 down / up
            self.h_a = ElicHyperAnalysis(self.N)
            self.h_s = ElicHyperSynthesis(self.N)
            self.entropy_bottleneck = DeepFactorized(self.N)
            self.latent_codec = ElicLatentCodec(self.M, self.groups, 2 * self.N)

        def analysis(self, x):
            y = self.g_a(x)
            return y, self.h_a(y)

        def hyper_synthesis(self, z_hat):
            return self.h_s(z_hat)  # [B, h, w, 2N]

        def synthesis(self, y_hat):
            return self.g_s(y_hat)

        def step_parameters(self, hyper, y_hat, step):
            return self.latent_codec.step_parameters(hyper, y_hat, step)

        @nn.nowrap  # no submodule access here: a pure function of the attributes
        def coding_masks(self, latent_shape):
            return elic_coding_masks(latent_shape, self.groups)

        def __call__(self, x, train=True):
            if not train:
                return self.eval_forward(x)
            y, z = self.analysis(x)
            bits_z = self.entropy_bottleneck.bits(
                add_uniform_noise(z, self.make_rng("noise"))).sum(axis=(1, 2, 3))
            hyper = self.hyper_synthesis(ste_round(z))
            y_hat, bits_y = self.latent_codec.train_forward(
                y, hyper, self.make_rng("noise"))
            return self.synthesis(y_hat), {"y": bits_y, "z": bits_z}

Layer stacks follow CompressAI's `Elic2022Official` (variant (A) of notes/baselines.md
§2): h_s outputs 2N channels, the channel context sees all previous groups, one
aggregation net per group is shared by both passes, outputs are chunked (scales, means),
anchors are (i+j) even. Our choices: the last h_s layer is a plain 3×3 conv (a stride-1
transposed conv is the same function up to a kernel flip); 1×1 convs are `nn.Dense` on
the channel axis; hidden aggregation widths are floored (CompressAI's ramp; it gives the
469 of the notes' table); spatial kernels count all 25 taps, half of them masked.

References:
  He et al., "ELIC: Efficient Learned Image Compression with Unevenly Grouped
  Space-Channel Contextual Adaptive Coding", CVPR 2022.
  He et al., "Checkerboard Context Model for Efficient Learned Image Compression",
  CVPR 2021 (the two-pass anchor / non-anchor scheme).
  CompressAI `models/sensetime.py::Elic2022Official` with `ChannelGroupsLatentCodec`
  and `CheckerboardLatentCodec`.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.gaussian import gaussian_bits, scale_to_index
from llic_jax.layers import TransposedConv
from llic_jax.ops import add_uniform_noise, ste_round

__all__ = [
    "ElicHyperAnalysis",
    "ElicHyperSynthesis",
    "ElicLatentCodec",
    "aggregation_widths",
    "anchor_mask",
    "checkerboard_kernel_mask",
    "elic_coding_masks",
]


def _conv(features: int, kernel: int, stride: int = 1) -> nn.Conv:
    """PyTorch-style conv: symmetric padding k//2 (so strided outputs are ceil(H/s))."""
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), ((pad, pad), (pad, pad)))


class ElicHyperAnalysis(nn.Module):
    """h_a: conv3×3 s1 M→N, ReLU, conv5×5 s2 N→N, ReLU, conv5×5 s2 N→N (y → z, ×4 down).

    Attributes:
      N: channels of z and of the hidden layers.
    """

    N: int = 192

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        x = nn.relu(_conv(self.N, 3)(y))
        x = nn.relu(_conv(self.N, 5, 2)(x))
        return _conv(self.N, 5, 2)(x)


class ElicHyperSynthesis(nn.Module):
    """h_s: deconv5 s2 N→N, ReLU, deconv5 s2 N→3N/2, ReLU, conv3×3 s1 3N/2→2N (×4 up).

    Attributes:
      N: channels of z; the output has 2N channels (variant (A): not 2M).
    """

    N: int = 192

    @nn.compact
    def __call__(self, z_hat: jax.Array) -> jax.Array:
        x = nn.relu(TransposedConv(self.N, 5, 2)(z_hat))
        x = nn.relu(TransposedConv(self.N * 3 // 2, 5, 2)(x))
        return _conv(2 * self.N, 3)(x)


def anchor_mask(height: int, width: int) -> np.ndarray:
    """Anchor positions, bool [h, w]: True where (i + j) is even."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return (i + j) % 2 == 0


def checkerboard_kernel_mask(kernel_size: int = 5) -> np.ndarray:
    """Taps of the spatial context, bool [K, K]: (i + j) odd, i.e. anchor neighbours."""
    return ~anchor_mask(kernel_size, kernel_size)


def _validate(latent_channels: int, groups: Sequence[int]) -> None:
    if sum(groups) != latent_channels or min(groups, default=0) < 1:
        raise ValueError(
            f"groups {tuple(groups)} must be positive and sum to M={latent_channels}"
        )


def elic_coding_masks(
    latent_shape: tuple[int, int, int], groups: Sequence[int]
) -> tuple[np.ndarray, ...]:
    """The 2·len(groups) static step masks over [h, w, M]: per group, anchors then the rest.

    Args:
      latent_shape: (h, w, M) of one latent.
      groups: channel-group sizes, summing to M.

    Returns:
      Boolean arrays [h, w, M] that partition the latent, in coding order.
    """
    h, w, m = latent_shape
    _validate(m, groups)
    anchors = anchor_mask(h, w)[:, :, None]
    bounds = np.cumsum([0, *groups])
    masks = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        in_group = np.zeros(m, bool)
        in_group[start:stop] = True
        masks += [anchors & in_group, ~anchors & in_group]
    return tuple(masks)


def aggregation_widths(
    in_features: int, out_features: int, floor: int, layers: int = 3
) -> list[int]:
    """Widths of the 1×1 aggregation net: a linear ramp in → out, hidden widths ≥ floor.

    E.g. (640, 128, 384) → [640, 469, 384, 128] (notes/baselines.md §2.3, group 3).
    """
    ramp = np.floor(np.linspace(in_features, out_features, layers + 1)).astype(int)
    ramp[1:-1] = np.maximum(ramp[1:-1], floor)
    return [int(c) for c in ramp]


class ParameterAggregation(nn.Module):
    """Three 1×1 convs with ReLU between, widths from `aggregation_widths` → (scale, mean).

    Attributes:
      features: output channels, 2·g_k (scales first, then means).
      floor: lower bound on the hidden widths.
    """

    features: int
    floor: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        widths = aggregation_widths(x.shape[-1], self.features, self.floor)
        for i, width in enumerate(widths[1:]):
            x = nn.Dense(width)(x)
            if i < len(widths) - 2:
                x = nn.relu(x)
        scale, mean = jnp.split(x, 2, axis=-1)
        return scale, mean


class ChannelContext(nn.Module):
    """g_ch: conv5×5 → widths[0], ReLU, conv5×5 → widths[1], ReLU, conv5×5 → features."""

    features: int
    widths: Sequence[int] = (224, 128)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.widths:
            x = nn.relu(_conv(width, 5)(x))
        return _conv(self.features, 5)(x)


class ElicLatentCodec(nn.Module):
    """SCCTX: uneven channel groups × checkerboard passes, as a stepwise latent codec.

    Parameters live in one child per group, `group_models_k` (our naming), each with
    `spatial_context`, `parameter_aggregation` and, for k ≥ 1, `channel_context`.

    Attributes:
      M: latent channels.
      groups: channel-group sizes, summing to M. ELIC's (16, 16, 32, 64, 192) at M=320;
        use proportional groups for other M (e.g. (8, 8, 16, 32, 96) at M=160).
      aggregation_floor: lower bound on the hidden widths of the aggregation nets
        (CompressAI: 2N = 384).
      channel_context_widths: hidden widths of each channel-context net.
    """

    M: int = 320
    groups: Sequence[int] = (16, 16, 32, 64, 192)
    aggregation_floor: int = 384
    channel_context_widths: Sequence[int] = (224, 128)

    def setup(self):
        _validate(self.M, self.groups)
        self.group_models = [
            _GroupModel(g, k > 0, self.aggregation_floor,
                        tuple(self.channel_context_widths))
            for k, g in enumerate(self.groups)
        ]  # fmt: skip

    @nn.nowrap
    def coding_masks(self, latent_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
        """Same as `elic_coding_masks(latent_shape, self.groups)`."""
        return elic_coding_masks(latent_shape, self.groups)

    @nn.nowrap
    def _bounds(self, k: int) -> tuple[int, int]:
        start = int(sum(self.groups[:k]))
        return start, start + int(self.groups[k])

    def step_distribution(
        self, hyper: jax.Array, y_hat: jax.Array, step: int
    ) -> tuple[jax.Array, jax.Array]:
        """Continuous (scale, mean) of coding step `step`, both shaped like y.

        Reads from `y_hat` only what earlier steps decoded: the channels of earlier groups,
        and for a non-anchor step the anchors of its own group; everything else is masked
        out explicitly. Outside the step's group the scale is 1 and the mean 0.
        """
        k, non_anchor = divmod(step, 2)
        start, stop = self._bounds(k)
        model = self.group_models[k]
        anchors = None
        if non_anchor:
            mask = jnp.asarray(anchor_mask(*y_hat.shape[1:3]))[None, :, :, None]
            anchors = jnp.where(mask, y_hat[..., start:stop], 0.0)
        context = model.channel(y_hat[..., :start]) if k > 0 else None
        scale, mean = model.parameters(hyper, context, anchors)
        pad = ((0, 0), (0, 0), (0, 0), (start, self.M - stop))
        return jnp.pad(scale, pad, constant_values=1.0), jnp.pad(mean, pad)

    def step_parameters(
        self, hyper: jax.Array, y_hat: jax.Array, step: int
    ) -> tuple[jax.Array, jax.Array]:
        """(int32 scale-table index, mean) for coding step `step`, both shaped like y."""
        scale, mean = self.step_distribution(hyper, y_hat, step)
        return scale_to_index(scale), mean

    def two_pass(
        self, y: jax.Array, hyper: jax.Array, quantize=ste_round
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """All groups at full resolution, with STE rounding: (y_hat, scale, mean).

        In the forward values this equals the coding steps run in order (the eval path):
        each anchor is `round(y − μ) + μ`, and so is every element of y_hat.
        `quantize` replaces the rounding of the residuals `y − μ` (see
        `relaxed_forward`).
        """
        mask = jnp.asarray(anchor_mask(*y.shape[1:3]))[None, :, :, None]
        y_hats, scales, means = [], [], []
        for k, model in enumerate(self.group_models):
            start, stop = self._bounds(k)
            y_k = y[..., start:stop]
            context = model.channel(jnp.concatenate(y_hats, -1)) if k > 0 else None
            scale_a, mean_a = model.parameters(hyper, context, None)
            anchors = jnp.where(mask, quantize(y_k - mean_a) + mean_a, 0.0)
            scale_n, mean_n = model.parameters(hyper, context, anchors)
            scale = jnp.where(mask, scale_a, scale_n)
            mean = jnp.where(mask, mean_a, mean_n)
            y_hats.append(quantize(y_k - mean) + mean)
            scales.append(scale)
            means.append(mean)
        cat = lambda xs: jnp.concatenate(xs, axis=-1)  # noqa: E731
        return cat(y_hats), cat(scales), cat(means)

    def train_forward(
        self, y: jax.Array, hyper: jax.Array, noise_rng: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """Training forward: (STE-rounded y_hat, bits [B]).

        Args:
          y: latent [B, h, w, M].
          hyper: h_s(z_hat) [B, h, w, C_hyper].
          noise_rng: key for the U(−½, ½) noise of the rate term; None rates the
            rounded residuals instead (a deterministic forward).

        Returns:
          y_hat for synthesis (and the channel context), and the rate −Σ log2 p of
          each batch element under each position's own (anchor / non-anchor) params,
          with continuous scales lower-bounded at 0.11.
        """
        y_hat, scale, mean = self.two_pass(y, hyper)
        if noise_rng is None:
            residual = jnp.round(y - mean)
        else:
            residual = add_uniform_noise(y, noise_rng) - mean
        bits = gaussian_bits(residual, scale)
        return y_hat, bits.sum(axis=(1, 2, 3))

    def relaxed_forward(self, y: jax.Array, hyper: jax.Array, quantize, step=1.0):
        """(y_hat, bits [B]) with `quantize` standing in for every rounding.

        The rate is that of the quantised residuals themselves, so a differentiable
        `quantize` (e.g. `ops.annealed_round`) makes rate and distortion smooth in `y`
        alike: what encoder-side latent refinement optimises (coding/latent_refinement.py).
        With `quantize=jnp.round` the values are the eval path's, up to the scale table.
        `step`: the quantisation step Δ (entropy/coarseness.py): residuals become
        Δ·quantize(r / Δ), rated at their scale over Δ.
        """
        y_hat, scale, mean = self.two_pass(y, hyper, lambda r: step * quantize(r / step))
        bits = gaussian_bits((y_hat - mean) / step, scale / step)
        return y_hat, bits.sum(axis=(1, 2, 3))


class _GroupModel(nn.Module):
    """The nets of one group: spatial context, channel context (k ≥ 1), aggregation."""

    size: int
    has_channel_context: bool
    floor: int
    channel_context_widths: tuple[int, ...]

    def setup(self):
        g = self.size
        mask = checkerboard_kernel_mask(5)[:, :, None, None]
        self.spatial_context = nn.Conv(
            2 * g, (5, 5), padding=((2, 2), (2, 2)),
            mask=jnp.asarray(np.broadcast_to(mask, (5, 5, g, 2 * g)), jnp.float32),
        )  # fmt: skip
        if self.has_channel_context:
            self.channel_context = ChannelContext(2 * g, self.channel_context_widths)
        self.parameter_aggregation = ParameterAggregation(2 * g, self.floor)

    def channel(self, previous: jax.Array) -> jax.Array:
        """Channel context from the decoded earlier groups [B, h, w, Σ_{j<k} g_j]."""
        return self.channel_context(previous)

    def parameters(self, hyper, context, anchors):
        """(scale, mean) [B, h, w, g]; `anchors` None means the anchor pass (zeros)."""
        b, h, w = hyper.shape[:3]
        if anchors is None:
            spatial = jnp.zeros((b, h, w, 2 * self.size), hyper.dtype)
        else:
            spatial = self.spatial_context(anchors)
        parts = [spatial] + ([context] if context is not None else []) + [hyper]
        return self.parameter_aggregation(jnp.concatenate(parts, axis=-1))
