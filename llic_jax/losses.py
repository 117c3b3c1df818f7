"""Rate–distortion losses. The λ convention of the whole project lives here.

MSE: `loss = bpp + λ·MSE`, with MSE computed on the 0–255 scale; this equals CompressAI's
`λ·255²·MSE[0,1] + bpp`, so its quality → λ tables (DESIGN.md §5) apply unchanged.
bpp = Σ −log2 p(y, z) / (H·W), per image, then averaged over the batch.
"""

import jax
import jax.numpy as jnp

__all__ = ["rate_distortion_loss"]


def rate_distortion_loss(
    x: jax.Array, x_hat: jax.Array, bits: dict[str, jax.Array], lmbda: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`bpp + λ·MSE₂₅₅` for images in [0, 1].

    Args:
      x, x_hat: [B, H, W, 3] float, originals and reconstructions in [0, 1].
      bits: per-image bit counts, e.g. {"y": [B], "z": [B]}.
      lmbda: the Lagrange multiplier λ (MSE on 0–255).

    Returns:
      (scalar loss, {"loss", "bpp", "mse"} with mse on 0–255).
    """
    pixels = x.shape[1] * x.shape[2]
    bpp = sum(jnp.mean(b) for b in bits.values()) / pixels
    mse = jnp.mean(jnp.square(255.0 * (x - x_hat)))
    loss = bpp + lmbda * mse
    return loss, {"loss": loss, "bpp": bpp, "mse": mse}
