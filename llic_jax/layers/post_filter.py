"""A residual post-filter for a trained codec's reconstructions (decoder side only).

Not part of LLIC: an addition for the compact models this project can train. `g_s` of a
compact model trained for ~10⁴ steps leaves structure in its output that a small
convolutional network learns to remove when trained on the frozen codec's own
reconstructions (`train/post_filter.py`); the bitstream is unchanged, so the filter
costs no bits, only decoding time.

Layout: the image is folded 2×2 into channels (space-to-depth, [H, W, 3] → [H/2, W/2,
12]), so each 3×3 convolution sees 6×6 pixels at a quarter of the cost; a 3×3 stem to
`width` channels, `blocks` pre-activation residual blocks of two 3×3 convolutions, and a
3×3 head back to 12 channels that is unfolded and added to the input. The head starts at
zero, so an untrained filter is the identity and training starts from the codec as it
is. Inputs are float images in [0, 1] with even height and width (the codecs' padded
sizes are multiples of 16 or more).

Self-ensemble (`dihedral_mean`): the filter is not invariant to rotations and mirrors,
so its eight outputs on the eight orientations of an image, each turned back, differ a
little; their mean is, on average, closer to the original than each of them (the
"geometric self-ensemble" of super-resolution: Lim et al., "Enhanced deep residual
networks for single image super-resolution" (EDSR), CVPRW 2017, arXiv:1707.02921). It
costs eight filter passes and no bits. Measured on kodak24 with the shipped session-26
filters (eval-mode reconstructions, docs/results-history.md "Session 27"): q3
28.677 → 28.709 dB with all eight, 28.706 with the four rotations, 28.698 with a
left-right mirror only. The averaging also shortens the residual; scaling it back by
~1.15 adds ~0.013 dB more (same section): a property of each trained filter, so the gain
is stored in its file (post_filter_weights.py `ensemble_gain`) and applied there, not
here.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from llic_jax.layers.transposed_conv import depth_to_space

FOLD = 2  # space-to-depth factor


def space_to_depth(x: jax.Array, factor: int) -> jax.Array:
    """[B, H, W, C] → [B, H/f, W/f, f·f·C], the inverse of `depth_to_space`."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // factor, factor, w // factor, factor, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // factor, w // factor, -1)


def _orient(x: jax.Array, k: int) -> jax.Array:
    """Orientation k of [B, H, W, C] images, as coding/orientation.py numbers them."""
    turned = jnp.rot90(x, k % 4, axes=(1, 2))
    return turned[:, :, ::-1] if k >= 4 else turned


def _unorient(x: jax.Array, k: int) -> jax.Array:
    """Inverse of `_orient`."""
    unmirrored = x[:, :, ::-1] if k >= 4 else x
    return jnp.rot90(unmirrored, -(k % 4), axes=(1, 2))


def dihedral_mean(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """Mean over the 8 orientations k of unorient_k(fn(orient_k(x))), [B, H, W, C] → same.

    `fn` maps [B, H, W, C] to the same shape for either orientation of H and W (a fully
    convolutional filter does). The result is equivariant: turning `x` turns it.
    """
    return sum(_unorient(fn(_orient(x, k)), k) for k in range(8)) / 8.0


class ResidualBlock(nn.Module):
    """x + conv(gelu(conv(gelu(x)))), 3×3 convolutions of `width` channels."""

    width: int

    @nn.compact
    def __call__(self, x):
        r = nn.Conv(self.width, (3, 3), name="conv_0")(nn.gelu(x))
        r = nn.Conv(self.width, (3, 3), name="conv_1")(nn.gelu(r))
        return x + r


class PostFilter(nn.Module):
    """Residual filter x̂ → x̂ + f(x̂) on [B, H, W, 3] float images (module docstring)."""

    width: int = 48
    blocks: int = 4

    @nn.compact
    def __call__(self, x_hat):
        if x_hat.shape[1] % FOLD or x_hat.shape[2] % FOLD:
            raise ValueError(f"PostFilter needs even height and width, got {x_hat.shape}")
        h = nn.Conv(self.width, (3, 3), name="stem")(space_to_depth(x_hat, FOLD))
        for i in range(self.blocks):
            h = ResidualBlock(self.width, name=f"block_{i}")(h)
        r = nn.Conv(
            FOLD * FOLD * x_hat.shape[-1],
            (3, 3),
            kernel_init=nn.initializers.zeros,
            name="head",
        )(nn.gelu(h))
        return x_hat + depth_to_space(r, FOLD)
