"""Hyperprior reference models: `bmshj2018-hyperprior` and `mbt2018-mean`.

Layer stacks as CompressAI's `ScaleHyperprior` and `MeanScaleHyperprior` (5×5 stride-2
convolutions with GDN in the main transforms, ReLU / LeakyReLU in the hyper transforms);
N=128, M=192 are CompressAI's sizes for its lower qualities.

Our choices: stride-2 convolutions pad 2 on each side (PyTorch's `padding=k//2`, so
weights port); transposed convolutions are `TransposedConv` (Flax 'SAME', output ×2); `z` is
rounded to plain integers (see entropy/factorized.py); synthesis uses the STE-rounded
`y` in training, the rate uses the noisy `y` (CompressAI ≥ 1.2).

References:
  Ballé et al., "Variational image compression with a scale hyperprior", ICLR 2018.
  Minnen, Ballé, Toderici, "Joint autoregressive and hierarchical priors for learned
  image compression", NeurIPS 2018 (the mean-scale hyperprior, without the context model).
"""

import flax.linen as nn
import jax.numpy as jnp

from llic_jax.entropy.factorized import DeepFactorized
from llic_jax.entropy.gaussian import gaussian_bits, scale_to_index
from llic_jax.layers import GDN, TransposedConv
from llic_jax.models.base import CompressionModel
from llic_jax.ops import add_uniform_noise, ste_round

__all__ = ["MeanScaleHyperprior", "ScaleHyperprior"]


def conv(features: int, kernel: int = 5, stride: int = 2) -> nn.Conv:
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), ((pad, pad), (pad, pad)))


def deconv(features: int, kernel: int = 5, stride: int = 2) -> TransposedConv:
    return TransposedConv(features, kernel, stride)


def analysis_transform(n: int, m: int) -> nn.Sequential:
    return nn.Sequential([conv(n), GDN(), conv(n), GDN(), conv(n), GDN(), conv(m)])


def synthesis_transform(n: int) -> nn.Sequential:
    return nn.Sequential(
        [deconv(n), GDN(inverse=True), deconv(n), GDN(inverse=True),
         deconv(n), GDN(inverse=True), deconv(3)]
    )  # fmt: skip


class ScaleHyperprior(CompressionModel):
    """Ballé 2018: zero-mean Gaussian conditional with scales from the hyperprior.

    Attributes:
      N: channels of the hidden layers.
      M: channels of the latent y.
    """

    N: int = 128
    M: int = 192

    def setup(self):
        n, m = self.N, self.M
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n)
        self.h_a = nn.Sequential([conv(n, 3, 1), nn.relu, conv(n), nn.relu, conv(n)])
        self.h_s = nn.Sequential(
            [deconv(n), nn.relu, deconv(n), nn.relu, conv(m, 3, 1), nn.relu]
        )
        self.entropy_bottleneck = DeepFactorized(n)

    def analysis(self, x):
        y = self.g_a(x)
        return y, self.h_a(jnp.abs(y))

    def hyper_synthesis(self, z_hat):
        return {"scale": self.h_s(z_hat), "mean": None}

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    def step_parameters(self, hyper, y_hat, step):
        del step
        mean = jnp.zeros_like(y_hat) if hyper["mean"] is None else hyper["mean"]
        return scale_to_index(hyper["scale"]), mean

    def train_latents(self, y, hyper, noise_rng):
        mean = 0.0 if hyper["mean"] is None else hyper["mean"]
        bits = gaussian_bits(add_uniform_noise(y, noise_rng) - mean, hyper["scale"])
        return ste_round(y - mean) + mean, bits.sum(axis=(1, 2, 3))

    def relaxed_latents(self, y, hyper, quantize, step=1.0):
        mean = 0.0 if hyper["mean"] is None else hyper["mean"]
        residual = step * quantize((y - mean) / step)
        bits = gaussian_bits(residual / step, hyper["scale"] / step)
        return residual + mean, bits.sum(axis=(1, 2, 3))


class MeanScaleHyperprior(ScaleHyperprior):
    """Minnen 2018 without context: h_s predicts both the means and the scales of y."""

    def setup(self):
        n, m = self.N, self.M
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n)
        self.h_a = nn.Sequential(
            [conv(n, 3, 1), nn.leaky_relu, conv(n), nn.leaky_relu, conv(n)]
        )
        self.h_s = nn.Sequential(
            [deconv(m), nn.leaky_relu, deconv(m * 3 // 2), nn.leaky_relu,
             conv(m * 2, 3, 1)]
        )  # fmt: skip
        self.entropy_bottleneck = DeepFactorized(n)

    def analysis(self, x):
        y = self.g_a(x)
        return y, self.h_a(y)

    def hyper_synthesis(self, z_hat):
        scale, mean = jnp.split(self.h_s(z_hat), 2, axis=-1)
        return {"scale": scale, "mean": mean}
