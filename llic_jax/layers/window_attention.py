"""Swin-style window multi-head self-attention (W-MSA / SW-MSA) on NHWC feature maps.

The attention of Swin (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows", ICCV 2021) as the learned-compression baselines use it: STF's transforms
(Zou, Song, Zhang, "The Devil Is in the Details: Window-based Attention for Image
Compression", CVPR 2022), TCM's conv-transformer blocks and its SWAtten entropy-model module
(Liu, Sun, Katto, "Learned Image Compression with Mixed Transformer-CNN Architectures",
CVPR 2023). A feature map is cut into non-overlapping w×w windows; each window attends
within itself, with a learned bias per (relative offset, head). Every second block rolls
the map by w//2 towards the top-left first, so windows straddle the previous block's
window borders; tokens that the roll brought together from opposite image borders are kept
apart by an additive mask.

Conventions (those of Swin, so a PyTorch checkpoint ports by renaming and transposing):
  * Windows are ordered batch-major, then row-major over the window grid; the w·w tokens of
    a window are row-major. `window_partition` gives `[B·nW, w·w, C]`.
  * The qkv projection's 3·C outputs are laid out `(3, heads, head_dim)`: q of head 0, …,
    then k, then v (Swin's and TCM's layout).
  * Relative position bias table `[(2w−1)², heads]`; offset (dy, dx) of query minus key,
    each in [−(w−1), w−1], sits at row `(dy + w − 1)·(2w − 1) + dx + w − 1`. TCM stores
    the same numbers as `[heads, 2w−1, 2w−1]`.
  * Shift mask: regions labelled as in Swin (per axis: [0, S−w), [S−w, S−s), [S−s, S) of
    the rolled map, S the padded size, s the shift); attention between tokens of different
    regions gets −100 added to its logit (`MASK_VALUE`, Swin's and STF's value; TCM's
    SCUNet-derived code fills −inf instead, which gives the same softmax to float32
    precision for any reasonable logits).
  * Parameter names follow Swin: `norm1`, `attn/{qkv, proj, relative_position_bias_table}`,
    `norm2`, `mlp/{fc1, fc2}`.

Our choices (marked where the baselines differ):
  * Padding: `SwinBlock` LayerNorms, then zero-pads H and W at the bottom/right to a
    multiple of the window (STF's Swin code does the same), and always crops back to the
    input size. Padded tokens are not masked: they take part in attention as keys, as in
    STF. TCM's blocks never pad (its codec pads images to a multiple of 128); its SWAtten
    centre-pads inputs no larger than the window and never crops back (a quirk; ours
    always crops, so output size = input size).
  * Shift: w//2 along each axis whose padded size exceeds the window; an axis that is a
    single window is not shifted (a roll there would only cut the window into masked
    pieces). Swin's fixed-resolution code disables the shift, and shrinks the window, when
    min(H, W) ≤ w; STF's and TCM's code shift regardless. Results differ from theirs only
    on maps of a single window along an axis.
  * Init: Dense kernels and the bias table truncated normal with std 0.02, biases zero,
    as Swin/STF (`_init_weights`); TCM keeps PyTorch's default Linear init. Ours is
    truncated at ±2σ (|w| ≤ 0.045); timm's absolute ±2 bounds leave its std-0.02 normal
    effectively untruncated.
  * LayerNorm epsilon 1e-5 (PyTorch's default; Flax's is 1e-6); GELU exact (erf), as
    PyTorch's `nn.GELU()`.
  * No dropout and no stochastic depth (STF trains with drop-path 0.2, TCM with 0).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "MASK_VALUE",
    "SwinBlock",
    "SwinBlockPair",
    "WindowAttention",
    "relative_position_index",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]

MASK_VALUE = -100.0
_LN_EPSILON = 1e-5
# JAX's `stddev` is that of the normal before truncation at ±2σ; dividing by the std of a
# standard normal truncated to [−2, 2] makes the samples' std 0.02, as timm's.
_init_std002 = nn.initializers.truncated_normal(stddev=0.02 / 0.87962566103423978)


def _resolve_heads(
    dim: int, num_heads: int | None, head_dim: int | None
) -> tuple[int, int]:
    """(num_heads, head_dim) from exactly one of them (STF gives heads, TCM head_dim)."""
    if (num_heads is None) == (head_dim is None):
        raise ValueError("give exactly one of num_heads and head_dim")
    given = num_heads if num_heads is not None else head_dim
    if given <= 0 or dim % given:
        raise ValueError(f"dim {dim} does not split evenly by {given}")
    if num_heads is not None:
        return num_heads, dim // num_heads
    return dim // given, given


def _check_window_grid(height: int, width: int, window_size: int) -> None:
    if window_size < 1 or height % window_size or width % window_size:
        raise ValueError(
            f"{height}×{width} is not a multiple of the window {window_size}"
        )


def window_partition(x: jax.Array, window_size: int) -> jax.Array:
    """Cuts `[B, H, W, C]` into windows `[B·nW, w·w, C]` (H, W multiples of w).

    Order: batch-major, then row-major over the (H/w)×(W/w) window grid; tokens row-major
    within a window. Works on numpy and JAX arrays alike.
    """
    b, h, w, c = x.shape
    ws = window_size
    _check_window_grid(h, w, ws)
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // ws) * (w // ws), ws * ws, c)


def window_reverse(
    windows: jax.Array, window_size: int, height: int, width: int
) -> jax.Array:
    """Inverse of `window_partition`: `[B·nW, w·w, C]` back to `[B, height, width, C]`."""
    n, tokens, c = windows.shape
    ws = window_size
    _check_window_grid(height, width, ws)
    per_image = (height // ws) * (width // ws)
    if tokens != ws * ws or n % per_image:
        raise ValueError(f"{windows.shape} windows do not tile {height}×{width} by {ws}")
    x = windows.reshape(n // per_image, height // ws, width // ws, ws, ws, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n // per_image, height, width, c)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if np.ndim(value) == 0:
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def _region_labels(size: int, window_size: int, shift: int) -> np.ndarray:
    labels = np.zeros(size, np.int32)
    if shift:
        labels[size - window_size : size - shift] = 1
        labels[size - shift :] = 2
    return labels


def shifted_window_mask(
    height: int,
    width: int,
    window_size: int,
    shift: int | Sequence[int],
    mask_value: float = MASK_VALUE,
) -> np.ndarray:
    """Additive attention mask `[nW, w·w, w·w]` for a map rolled by −shift (Swin's labels).

    Args:
      height, width: size of the (padded) map; multiples of `window_size`.
      window_size: w.
      shift: the roll, one int or (along H, along W), each in [0, w). 0 on an axis: no
        regions along it.
      mask_value: added to the logits of query/key pairs from different regions.

    Returns:
      float32 numpy array, 0 where attention is allowed, `mask_value` elsewhere; windows in
      `window_partition` order (the same for every image of a batch).
    """
    _check_window_grid(height, width, window_size)
    shift_h, shift_w = _pair(shift)
    if not (0 <= shift_h < window_size and 0 <= shift_w < window_size):
        raise ValueError(f"shift {shift} outside [0, {window_size})")
    labels = (
        _region_labels(height, window_size, shift_h)[:, None] * 3
        + _region_labels(width, window_size, shift_w)[None, :]
    )
    windows = window_partition(labels[None, :, :, None], window_size)[..., 0]
    apart = windows[:, :, None] != windows[:, None, :]
    return np.where(apart, mask_value, 0.0).astype(np.float32)


def relative_position_index(window_size: int) -> np.ndarray:
    """Row of the bias table for each (query, key) token pair of a window: `[w·w, w·w]`.

    Entry (i, j) is `(dy + w − 1)·(2w − 1) + dx + w − 1` with (dy, dx) = position of token
    i minus position of token j (tokens row-major), as in Swin.
    """
    ws = window_size
    rows, cols = np.divmod(np.arange(ws * ws), ws)
    dy = rows[:, None] - rows[None, :] + ws - 1
    dx = cols[:, None] - cols[None, :] + ws - 1
    return (dy * (2 * ws - 1) + dx).astype(np.int32)


class WindowAttention(nn.Module):
    """Window multi-head self-attention with relative position bias (W-MSA / SW-MSA).

    Call: `(x [B·nW, w·w, C], mask [nW, w·w, w·w] or None) -> [B·nW, w·w, C]`. `mask` is
    additive (see `shifted_window_mask`) and broadcast over the batch: windows must be in
    `window_partition` order.

    Attributes:
      dim: C, channels of the tokens.
      window_size: w.
      num_heads: number of heads (STF's convention) ...
      head_dim: ... or channels per head (TCM's); give exactly one, by keyword.
      qkv_bias: bias in the qkv projection (True in Swin, STF, TCM).
    """

    dim: int
    window_size: int
    num_heads: int | None = None
    head_dim: int | None = None
    qkv_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        heads, head_dim = _resolve_heads(self.dim, self.num_heads, self.head_dim)
        n, tokens, c = x.shape
        ws = self.window_size
        if tokens != ws * ws or c != self.dim:
            raise ValueError(
                f"expected [B·nW, {ws * ws}, {self.dim}] tokens, got {x.shape}"
            )
        table = self.param(
            "relative_position_bias_table", _init_std002, ((2 * ws - 1) ** 2, heads)
        )
        bias = jnp.transpose(table[relative_position_index(ws)], (2, 0, 1))  # [h, N, N]

        qkv = nn.Dense(
            3 * c, use_bias=self.qkv_bias, kernel_init=_init_std002, name="qkv"
        )(x)
        qkv = qkv.reshape(n, tokens, 3, heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B·nW, N, h, d]
        logits = jnp.einsum("bnhd,bmhd->bhnm", q * head_dim**-0.5, k) + bias
        if mask is not None:
            windows = mask.shape[0]
            if mask.shape != (windows, tokens, tokens) or n % windows:
                raise ValueError(
                    f"mask {mask.shape} does not fit {n} windows of {tokens}"
                )
            logits = logits.reshape(n // windows, windows, heads, tokens, tokens)
            logits = logits + jnp.asarray(mask, logits.dtype)[None, :, None]
            logits = logits.reshape(n, heads, tokens, tokens)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhnm,bmhd->bnhd", weights, v).reshape(n, tokens, c)
        return nn.Dense(c, kernel_init=_init_std002, name="proj")(out)


class _Mlp(nn.Module):
    """Dense → exact GELU → Dense (Swin's `Mlp`)."""

    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.hidden, kernel_init=_init_std002, name="fc1")(x)
        h = nn.gelu(h, approximate=False)
        return nn.Dense(x.shape[-1], kernel_init=_init_std002, name="fc2")(h)


def _block_shifts(
    height: int, width: int, window_size: int, shift: bool
) -> tuple[int, int]:
    """Roll per axis: w//2 where the padded size exceeds the window (our choice), else 0."""
    s = window_size // 2 if shift else 0
    return (s if height > window_size else 0), (s if width > window_size else 0)


class SwinBlock(nn.Module):
    """Swin block on `[B, H, W, C]`: x + (S)W-MSA(LN(x)), then x + MLP(LN(x)).

    Any H, W: the normalised map is zero-padded at the bottom/right to a multiple of the
    window and the attention output cropped back (module docstring: padding, shift).

    Attributes:
      dim: C.
      window_size: w.
      num_heads: heads (STF) ...
      head_dim: ... or channels per head (TCM); exactly one, by keyword.
      shift: SW-MSA (roll by w//2 where the padded size exceeds w, with the region mask)
        instead of W-MSA.
      mlp_ratio: MLP hidden width / C.
      qkv_bias: bias in the qkv projection.
    """

    dim: int
    window_size: int
    num_heads: int | None = None
    head_dim: int | None = None
    shift: bool = False
    mlp_ratio: float = 4.0
    qkv_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, h, w, c = x.shape
        if c != self.dim:
            raise ValueError(f"expected {self.dim} channels, got {x.shape}")
        ws = self.window_size
        y = nn.LayerNorm(epsilon=_LN_EPSILON, name="norm1")(x)
        y = jnp.pad(y, ((0, 0), (0, -h % ws), (0, -w % ws), (0, 0)))
        hp, wp = y.shape[1:3]
        shifts = _block_shifts(hp, wp, ws, self.shift)
        mask = None
        if any(shifts):
            y = jnp.roll(y, (-shifts[0], -shifts[1]), axis=(1, 2))
            mask = jnp.asarray(shifted_window_mask(hp, wp, ws, shifts))
        attention = WindowAttention(
            self.dim,
            ws,
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            qkv_bias=self.qkv_bias,
            name="attn",
        )
        y = window_reverse(attention(window_partition(y, ws), mask), ws, hp, wp)
        if any(shifts):
            y = jnp.roll(y, shifts, axis=(1, 2))
        x = x + y[:, :h, :w]
        y = nn.LayerNorm(epsilon=_LN_EPSILON, name="norm2")(x)
        return x + _Mlp(int(self.dim * self.mlp_ratio), name="mlp")(y)


class SwinBlockPair(nn.Module):
    """A W-MSA block then an SW-MSA block (`w_block`, `sw_block`): STF's and TCM's unit.

    Attributes: those of `SwinBlock` except `shift`.
    """

    dim: int
    window_size: int
    num_heads: int | None = None
    head_dim: int | None = None
    mlp_ratio: float = 4.0
    qkv_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for shift, name in ((False, "w_block"), (True, "sw_block")):
            x = SwinBlock(
                self.dim,
                self.window_size,
                num_heads=self.num_heads,
                head_dim=self.head_dim,
                shift=shift,
                mlp_ratio=self.mlp_ratio,
                qkv_bias=self.qkv_bias,
                name=name,
            )(x)
        return x
