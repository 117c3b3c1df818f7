"""The contract every model of the registry fulfils: transforms plus a stepwise latent codec.

A model codes an image as (1) the hyper-latent `z`, integers under a factorized prior,
then (2) the latent `y` in one or more *coding steps*. Step k covers a fixed set of latent
positions (a static boolean mask: all of `y` for a hyperprior, one channel slice for a
channel-autoregressive model, one checkerboard half of one group for ELIC). For each step
the model predicts, from `z` and the part of `y` decoded so far, an integer scale-table
index and a mean per element; the symbol is `round(y - mean)`.

`step_parameters` and `step_update` are the only functions whose floats decide symbols or
reconstructions, and the encoder and the decoder run the very same jitted versions of
them (coding/codec.py), so both sides see the same bits. The eval-mode forward
(`eval_forward`) runs the same steps in one traced function, which makes the estimated
rate the rate the coder spends (up to CDF quantisation and escapes).

Input convention: images are float32 NHWC in [0, 1]; heights and widths a multiple of
`pad_multiple` (the codec pads).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.coarseness import coarser_index, latent_step
from llic_jax.entropy.gaussian import symbol_bits
from llic_jax.ops import add_uniform_noise, ste_round

__all__ = ["CompressionModel"]


class CompressionModel(nn.Module):
    """Base class; subclasses define the transforms and the per-step predictions.

    Subclasses provide `entropy_bottleneck` (a `DeepFactorized`) and implement
    `analysis`, `hyper_synthesis`, `synthesis`, `step_parameters` and `train_latents`
    (the rate and the synthesis input of `y` in training); they override
    `coding_masks` and `step_update` when they code `y` in more than one step.
    """

    model_name: str = ""  # the registry key; set by `create_model`

    # Total down-sampling of the image to z: inputs are padded to a multiple of it.
    pad_multiple = 64
    latent_stride = 16

    def analysis(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Maps x [B, H, W, 3] to (y [B, H/16, W/16, M], z [B, H/64, W/64, Cz])."""
        raise NotImplementedError

    def hyper_synthesis(self, z_hat: jax.Array):
        """Integer-valued z_hat → the hyper features the coding steps condition on."""
        raise NotImplementedError

    def synthesis(self, y_hat: jax.Array) -> jax.Array:
        """y_hat → x_hat [B, H, W, 3], float, not clipped."""
        raise NotImplementedError

    def step_parameters(self, hyper, y_hat: jax.Array, step: int):
        """(scale index int32, mean float32), both shaped like y, for coding step `step`.

        `y_hat` holds the latents of the earlier steps and zeros elsewhere.
        """
        raise NotImplementedError

    def train_latents(
        self, y: jax.Array, hyper, noise_rng: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Training: (y_hat for synthesis, bits [B] of y under uniform noise)."""
        raise NotImplementedError

    def relaxed_latents(
        self, y: jax.Array, hyper, quantize, step=1.0
    ) -> tuple[jax.Array, jax.Array]:
        """(y_hat for synthesis, bits [B] of y) with `quantize` in place of rounding.

        `step`: the quantisation step Δ of y (entropy/coarseness.py): each residual
        r = y − mean becomes Δ·quantize(r / Δ), rated under its scale over Δ.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not support encoder-side latent refinement"
        )

    def step_update(self, hyper, y_hat, symbols, mean, step: int) -> jax.Array:
        """Writes the reconstruction of step `step` into `y_hat`.

        `symbols` (shaped like y) is valid on this step's mask and 0 elsewhere: the
        integer symbols, or at a coarseness above 0 the symbols times the quantisation
        step (float32), i.e. the dequantised residuals either way.
        """
        del hyper
        mask = jnp.asarray(self.coding_masks(y_hat.shape[1:])[step])
        return jnp.where(mask, symbols.astype(y_hat.dtype) + mean, y_hat)

    @nn.nowrap
    def coding_masks(self, latent_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
        """Static boolean masks over [h, w, M], one per coding step; they partition y."""
        return (np.ones(latent_shape, dtype=bool),)

    def hyper_latent_bits(self, z_hat: jax.Array) -> jax.Array:
        """−log2 p of each symbol of the integer hyper-latent (like `z_hat`)."""
        return self.entropy_bottleneck.bits(z_hat)

    def eval_latents(self, x: jax.Array, coarseness: int = 0) -> dict[str, jax.Array]:
        """Eval mode up to the synthesis: the latents and the bits of every symbol.

        `coarseness` k (static; entropy/coarseness.py) quantises y with the step Δ = r**k
        under table indexes lowered by k; 0 is the weights' own quantisation.

        Returns:
          {"y": the analysis output [B, h, w, M], "symbols_y" (int32, like y): the coded
          residuals round((y − mean) / Δ), "y_hat": what the decoder reconstructs from them,
          "z_hat": the integer hyper-latent [B, h', w', Cz], "bits_y" (like y) and
          "bits_z" (like z_hat): −log2 p of each symbol, y's under the table-snapped
          scale of its coding step}.
        """
        step_size = latent_step(coarseness)
        y, z = self.analysis(x)
        z_hat = jnp.round(z)
        hyper = self.hyper_synthesis(z_hat)
        y_hat = jnp.zeros_like(y)
        bits_y = jnp.zeros_like(y)
        symbols_y = jnp.zeros(y.shape, jnp.int32)
        for step, mask in enumerate(self.coding_masks(y.shape[1:])):
            index, mean = self.step_parameters(hyper, y_hat, step)
            index = coarser_index(index, coarseness)
            symbols = (
                jnp.round((y - mean) / step_size) if coarseness else jnp.round(y - mean)
            )
            symbols = jnp.where(mask, symbols, 0).astype(jnp.int32)
            bits_y = jnp.where(mask, symbol_bits(symbols, index), bits_y)
            symbols_y = jnp.where(mask, symbols, symbols_y)
            residuals = symbols * step_size if coarseness else symbols
            y_hat = self.step_update(hyper, y_hat, residuals, mean, step)
        bits_z = self.hyper_latent_bits(z_hat)
        return {"y": y, "symbols_y": symbols_y, "y_hat": y_hat, "z_hat": z_hat,
                "bits_y": bits_y, "bits_z": bits_z}  # fmt: skip

    def eval_forward(
        self, x: jax.Array, coarseness: int = 0
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Eval mode: hard rounding, the coder's own steps, table-snapped scales.

        `coarseness`: as in `eval_latents`.

        Returns:
          (x_hat [B, H, W, 3] float, {"y": bits [B], "z": bits [B]}).
        """
        latents = self.eval_latents(x, coarseness)
        bits = {name: latents[f"bits_{name}"].sum(axis=(1, 2, 3)) for name in "yz"}
        return self.synthesis(latents["y_hat"]), bits

    def relaxed_forward(self, y: jax.Array, z: jax.Array, quantize, step=1.0):
        """Decoder side of the model from given latents, with a stand-in for rounding.

        `quantize` (float array → float array) replaces every rounding: of `z`, and of
        each coding step's residual `y − mean`; both rates are those of the quantised
        values. With `jnp.round` this is the eval forward from (y, z) up to the scale
        table; with `ops.annealed_round` it is smooth, which encoder-side refinement of
        one image's latents needs (coding/latent_refinement.py). `step` is y's
        quantisation step Δ (entropy/coarseness.py; may be traced); z's is always 1.

        Returns:
          (x_hat [B, H, W, 3] float, bits [B] of y and z together).
        """
        z_hat = quantize(z)
        bits_z = self.hyper_latent_bits(z_hat).sum(axis=(1, 2, 3))
        y_hat, bits_y = self.relaxed_latents(
            y, self.hyper_synthesis(z_hat), quantize, step
        )
        return self.synthesis(y_hat), bits_y + bits_z

    def __call__(self, x: jax.Array, train: bool = True):
        """Training forward (noise for the rate, STE for synthesis) or the eval forward.

        Args:
          x: [B, H, W, 3] float in [0, 1], H and W multiples of `pad_multiple`.
          train: if False, returns `eval_forward(x)`.

        Returns:
          (x_hat, {"y": bits [B], "z": bits [B]}); needs the "noise" rng when training.
        """
        if not train:
            return self.eval_forward(x)
        y, z = self.analysis(x)
        bits_z = self.entropy_bottleneck.bits(
            add_uniform_noise(z, self.make_rng("noise"))
        )
        hyper = self.hyper_synthesis(ste_round(z))
        y_hat, bits_y = self.train_latents(y, hyper, self.make_rng("noise"))
        return self.synthesis(y_hat), {"y": bits_y, "z": bits_z.sum(axis=(1, 2, 3))}
