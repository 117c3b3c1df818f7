"""Image quality metrics (DESIGN.md §5): PSNR and MS-SSIM on 8-bit RGB, per image.

Averaging convention: both are computed per image; a dataset's PSNR is the mean of the
per-image PSNRs, its MS-SSIM the mean of the per-image linear values, and MS-SSIM in dB
is −10·log10(1 − mean), taken after averaging (CompressAI's and the papers' practice).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim", "ms_ssim_array", "ms_ssim_db", "psnr"]

# Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality
# assessment", Asilomar 2003: exponents of the five scales (as tf.image.ssim_multiscale).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03
_FILTER_SIZE, _FILTER_SIGMA = 11, 1.5


def psnr(x: np.ndarray, y: np.ndarray, max_val: float = 255.0) -> float:
    """PSNR in dB between two images of the same shape (8-bit values, RGB jointly).

    Identical images give `inf`.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(max_val**2 / mse))


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian; the 2-D window is its outer product (it is separable)."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * coords**2 / sigma**2)
    return g / g.sum()


def _filter(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """'VALID' Gaussian filtering of [B, H, W, C], separably, as shift-and-add.

    XLA:CPU runs grouped 2-D convolutions as many tiny ones (llic_jax/layers/dwconv.py);
    two 11-tap passes of fused slices are ~50× faster and agree to float32 rounding.
    """
    k = len(taps)
    h, w = x.shape[1:3]
    rows = sum(float(t) * x[:, i : h - k + 1 + i] for i, t in enumerate(taps))
    return sum(float(t) * rows[:, :, j : w - k + 1 + j] for j, t in enumerate(taps))


def _ssim_and_cs(x, y, max_val, taps):
    """Mean SSIM and mean contrast-structure term per image and channel: [B, C] each."""
    c1, c2 = (_K1 * max_val) ** 2, (_K2 * max_val) ** 2
    mu_x, mu_y = _filter(x, taps), _filter(y, taps)
    mu_xy, mu_sq = mu_x * mu_y, mu_x**2 + mu_y**2
    luminance = (2 * mu_xy + c1) / (mu_sq + c1)
    cross = 2 * _filter(x * y, taps) - 2 * mu_xy  # 2·covariance
    spread = _filter(x**2 + y**2, taps) - mu_sq  # σx² + σy²
    cs = (cross + c2) / (spread + c2)
    return (luminance * cs).mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _halve(x: jax.Array) -> jax.Array:
    """2×2 average pooling; odd sizes are first padded by mirroring the last row/column.

    tf.image.ssim_multiscale pads the remainder with 'SYMMETRIC' padding before its
    'VALID' pooling; for a remainder of one that repeats the edge row / column.
    """
    h, w = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


@functools.partial(jax.jit, static_argnames="max_val")
def _ms_ssim(x: jax.Array, y: jax.Array, max_val: float) -> jax.Array:
    taps = _gaussian_taps(_FILTER_SIZE, _FILTER_SIGMA)
    weights = jnp.asarray(MS_SSIM_WEIGHTS, x.dtype)
    factors = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        if scale:
            x, y = _halve(x), _halve(y)
        ssim, cs = _ssim_and_cs(x, y, max_val, taps)
        # The coarsest scale contributes SSIM (luminance included), the others only cs;
        # negative values are clipped at 0 before the power, as TensorFlow does.
        last = scale == len(MS_SSIM_WEIGHTS) - 1
        factors.append(jax.nn.relu(ssim if last else cs))
    per_channel = jnp.prod(jnp.stack(factors, axis=-1) ** weights, axis=-1)
    return per_channel.mean(axis=-1)  # [B]: mean over the colour channels


def ms_ssim(x, y, max_val: float = 255.0):
    """Multi-scale SSIM of images `[H, W, C]` or batches `[B, H, W, C]`.

    Five scales with the weights of Wang et al. 2003, an 11×11 Gaussian window with
    σ = 1.5, K1 = 0.01, K2 = 0.03, SSIM per colour channel then averaged over channels:
    the definition of `tf.image.ssim_multiscale` (tests compare the two on real photos).
    Computed in float32; images need at least 161 pixels a side (the 11-pixel window
    must fit the coarsest scale, ⌈side/16⌉).

    Returns:
      A float for one image, a numpy array [B] for a batch; linear, in [0, 1].
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    single = x.ndim == 3
    if x.ndim not in (3, 4):
        raise ValueError(f"expected [H, W, C] or [B, H, W, C], got shape {x.shape}")
    if single:
        x, y = x[None], y[None]
    coarsest = -(-min(x.shape[1:3]) // 2 ** (len(MS_SSIM_WEIGHTS) - 1))
    if coarsest < _FILTER_SIZE:
        raise ValueError(
            f"MS-SSIM needs images of at least 161 pixels a side, got {x.shape[1:3]}"
        )
    values = np.asarray(
        _ms_ssim(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), float(max_val))
    )
    return float(values[0]) if single else values


def ms_ssim_array(x: jax.Array, y: jax.Array, max_val: float = 255.0) -> jax.Array:
    """`ms_ssim` of batches [B, H, W, C] → [B] as a traceable JAX function (for losses).

    No shape checks: sides must be at least 161 pixels (see `ms_ssim`).
    """
    return _ms_ssim(x.astype(jnp.float32), y.astype(jnp.float32), float(max_val))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB: −10·log10(1 − value); identical images give `inf`."""
    return float("inf") if value >= 1 else float(-10 * np.log10(1 - value))
