"""Rate–distortion losses. The λ convention of the whole project lives here.

MSE: `loss = bpp + λ·MSE`, with MSE computed on the 0–255 scale; this equals CompressAI's
`λ·255²·MSE[0,1] + bpp`, so its quality → λ tables (DESIGN.md §5) apply unchanged.
MS-SSIM: `loss = bpp + λ·(1 − MS-SSIM)`, MS-SSIM on 8-bit RGB (llic_jax.metrics).
bpp = Σ −log2 p(y, z) / (H·W), per image, then averaged over the batch.
"""

import jax
import jax.numpy as jnp

from llic_jax.metrics import ms_ssim_array

__all__ = ["METRICS", "rate_distortion_loss", "rate_distortion_terms"]

METRICS = ("mse", "ms-ssim")


def rate_distortion_terms(
    x: jax.Array,
    x_hat: jax.Array,
    bits: dict[str, jax.Array],
    lmbda: float,
    metric: str = "mse",
    *,
    with_ms_ssim: bool = False,
) -> dict[str, jax.Array]:
    """Per-image loss terms, each [B]; the loss of a batch is the mean of `loss`.

    Args:
      x, x_hat: [B, H, W, 3] float, originals and reconstructions in [0, 1].
      bits: per-image bit counts, e.g. {"y": [B], "z": [B]}.
      lmbda: the Lagrange multiplier λ of `metric`.
      metric: "mse" (`bpp + λ·MSE₂₅₅`) or "ms-ssim" (`bpp + λ·(1 − MS-SSIM)`; images
        of at least 161 pixels a side).
      with_ms_ssim: also report MS-SSIM (without gradient) when training for MSE.

    Returns:
      {"loss", "bpp", "mse" (0–255), "psnr" (dB)} and "ms_ssim" (linear) when
      metric is "ms-ssim" or `with_ms_ssim`.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: {metric!r} is not one of {METRICS}")
    pixels = x.shape[1] * x.shape[2]
    bpp = sum(bits.values()) / pixels
    mse = jnp.mean(jnp.square(255.0 * (x - x_hat)), axis=(1, 2, 3))
    terms = {"bpp": bpp, "mse": mse}
    terms["psnr"] = jax.lax.stop_gradient(
        10 * jnp.log10(255.0**2 / jnp.maximum(mse, 1e-10))
    )
    if metric == "ms-ssim" or with_ms_ssim:
        # MS-SSIM of the [0, 255]-scaled images, the reconstruction clipped as decoded.
        value = ms_ssim_array(255.0 * x, 255.0 * jnp.clip(x_hat, 0.0, 1.0))
        terms["ms_ssim"] = value if metric == "ms-ssim" else jax.lax.stop_gradient(value)
    distortion = mse if metric == "mse" else 1.0 - terms["ms_ssim"]
    terms["loss"] = bpp + lmbda * distortion
    return terms


def rate_distortion_loss(
    x: jax.Array, x_hat: jax.Array, bits: dict[str, jax.Array], lmbda: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`bpp + λ·MSE₂₅₅` for images in [0, 1], averaged over the batch.

    Args:
      x, x_hat: [B, H, W, 3] float, originals and reconstructions in [0, 1].
      bits: per-image bit counts, e.g. {"y": [B], "z": [B]}.
      lmbda: the Lagrange multiplier λ (MSE on 0–255).

    Returns:
      (scalar loss, {"loss", "bpp", "mse"} with mse on 0–255).
    """
    terms = rate_distortion_terms(x, x_hat, bits, lmbda)
    means = {k: jnp.mean(terms[k]) for k in ("loss", "bpp", "mse")}
    return means["loss"], means
