"""LLIC's transform blocks: DepthRB, SCST, SCCT, the gate, and STB / CTB built from them.

What the paper states (Jiang et al., "LLIC: Large Receptive Field Transform Coding with
Adaptive Weights for Learned Image Compression", IEEE TMM 2024; notes/llic_paper.md):
  * a spatial transform block STB = non-linear embedding (DepthRB: 1×1 → depth-wise 3×3 →
    1×1, residual) → SCST (a large-kernel depth-wise convolution whose weights are
    generated from the input itself) → gate (1×1 expand, split in halves, multiply, 1×1
    project, residual);
  * a channel transform block CTB, the same skeleton with SCCT (channel importance factors
    generated from the input: the adaptive channel-wise bit allocation) in place of SCST;
  * kernels 11×11 and 9×9, no LayerNorm (the SLIC preprint found it unsuited).

Our choices, where the paper is silent (each is an attribute, so ablations are one flag):
  * Weight generation (SCST): the per-sample kernel is an input-conditioned mixture of
    `num_kernels` learned kernels, `W_b = Σ_r softmax(MLP(GAP(x_b)))_r · W_r`, as in
    dynamic convolution (Chen et al., CVPR 2020). Generating all K²·C taps directly from a
    pooled vector needs a C/r × K²·C matrix per block (~0.6–1.1 M parameters at C = 192,
    K = 11); the mixture needs num_kernels·K²·C and keeps the kernel a convex combination
    of well-trained static kernels. `dynamic=False` gives a static large-kernel conv. The
    generator's last layer starts at zero, so training starts from the uniform mixture.
  * SCCT: `x · 2σ(MLP(GAP(x)))`; the last layer starts at zero, so the block starts as
    the identity.
  * Gate: GELU(a) · b (a GEGLU), expansion ratio 2; activations GELU throughout (as the
    same authors' MLIC++).
  * Residual branches end in a learned per-channel scale initialised at 0.1 (LayerScale,
    Touvron et al., ICCV 2021), which keeps a deep stack without normalisation stable.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from llic_jax.layers.dwconv import depthwise_conv

__all__ = ["CTB", "SCCT", "SCST", "STB", "DepthRB", "Gate"]


def _conv1x1(features: int, name: str | None = None, zero: bool = False) -> nn.Conv:
    init = nn.initializers.zeros if zero else nn.linear.default_kernel_init
    return nn.Conv(features, (1, 1), kernel_init=init, name=name)


# Fan-in of a depth-wise tap set is K² (not K²·C): kernels are [K, K, C].
_depthwise_init = nn.initializers.variance_scaling(
    1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
)


def _global_average(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))


class LayerScale(nn.Module):
    """Learned per-channel scale of a residual branch (starts at `init`)."""

    init: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.constant(self.init), (x.shape[-1],))
        return x * scale


class DepthRB(nn.Module):
    """Non-linear embedding: 1×1 → GELU → depth-wise 3×3 → GELU → 1×1, residual."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        h = nn.gelu(_conv1x1(c)(x))
        kernel = self.param("dw_kernel", _depthwise_init, (3, 3, c))
        h = nn.gelu(depthwise_conv(h, kernel))
        return x + LayerScale()(_conv1x1(c)(h))


class SCST(nn.Module):
    """Self-conditioned spatial transform: a depth-wise K×K conv with generated weights.

    Attributes:
      kernel_size: odd K (the paper: 11 or 9).
      num_kernels: size of the kernel mixture the generator picks from.
      dynamic: generate per-sample kernels from the input; False: one static kernel.
      reduction: width of the generator MLP is C / reduction.
    """

    kernel_size: int = 11
    num_kernels: int = 4
    dynamic: bool = True
    reduction: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, k = x.shape[-1], self.kernel_size
        h = _conv1x1(c)(x)
        if not self.dynamic:
            kernel = self.param("kernel", _depthwise_init, (k, k, c))
        else:
            bank = self.param(
                "kernel_bank",
                lambda key, shape: jax.vmap(lambda kk: _depthwise_init(kk, shape[1:]))(
                    jax.random.split(key, shape[0])
                ),
                (self.num_kernels, k, k, c),
            )
            g = nn.gelu(nn.Dense(max(c // self.reduction, 8))(_global_average(h)))
            logits = nn.Dense(self.num_kernels, kernel_init=nn.initializers.zeros)(g)
            weights = jax.nn.softmax(logits, axis=-1)  # [B, R]
            kernel = jnp.einsum("br,rijc->bijc", weights, bank)
        h = depthwise_conv(h, kernel)
        return x + LayerScale()(_conv1x1(c)(nn.gelu(h)))


class SCCT(nn.Module):
    """Self-conditioned channel transform: channel importance factors from the input.

    `x · 2σ(MLP(GAP(x)))`: the adaptive channel-wise bit allocation of the paper.
    """

    reduction: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        g = nn.gelu(nn.Dense(max(c // self.reduction, 8))(_global_average(x)))
        factors = 2.0 * jax.nn.sigmoid(nn.Dense(c, kernel_init=nn.initializers.zeros)(g))
        return x * factors[:, None, None, :]


class Gate(nn.Module):
    """1×1 expand to two halves, GELU(a)·b, 1×1 project, residual (replaces the FFN)."""

    expansion: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        a, b = jnp.split(_conv1x1(2 * self.expansion * c)(x), 2, axis=-1)
        return x + LayerScale()(_conv1x1(c)(nn.gelu(a) * b))


class STB(nn.Module):
    """Spatial transform block: DepthRB → SCST(K) → gate."""

    kernel_size: int = 11
    num_kernels: int = 4
    dynamic: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = DepthRB()(x)
        x = SCST(self.kernel_size, self.num_kernels, self.dynamic)(x)
        return Gate()(x)


class CTB(nn.Module):
    """Channel transform block: DepthRB → SCCT → gate."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return Gate()(SCCT()(DepthRB()(x)))
