import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from llic_jax.layers import depthwise_conv, dwconv

# (B, H, W, C, K): odd and even sizes, H or W (or both) smaller than K. Each runs with a
# static and with a per-sample kernel; one shape per K keeps the eagerly compiled ops (K²
# slices and their transposes) shared between formulations and kernel kinds.
SHAPES = [
    (1, 5, 4, 5, 1),
    (3, 7, 6, 4, 3),
    (2, 4, 9, 6, 5),
    (2, 12, 7, 4, 11),
    (3, 4, 3, 5, 13),
]
CASES = [shape + (per_sample,) for shape in SHAPES for per_sample in (False, True)]
FUNCTIONS = {**dwconv._FORMULATIONS, "public": depthwise_conv}
# A few large ops compile faster as one program; the unrolled K² taps of the others run
# faster eagerly, where the compiled slices are shared between formulations and tests.
JITTED = {"xla", "fft", "fft_vjp"}


@pytest.fixture(autouse=True, scope="module")
def _quick_compiles():
    # Hundreds of small programs: compile them without XLA's optimisation passes.
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


def _reference(x, kernel):
    def one(x, k):
        return lax.conv_general_dilated(
            x,
            k[:, :, None, :],
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1],
        )

    if kernel.ndim == 3:
        return one(x, kernel)
    return jax.vmap(lambda xi, ki: one(xi[None], ki)[0])(x, kernel)


@functools.cache
def _case(B, H, W, C, K, per_sample):
    """Inputs, cotangent and the reference's value and gradients (computed once)."""
    # NumPy's generator: jax.random would compile a sampler for every shape.
    rng = np.random.default_rng(K)
    x, cotangent = (
        jnp.asarray(rng.standard_normal((B, H, W, C)), jnp.float32) for _ in "xg"
    )
    kernel_shape = ((B,) if per_sample else ()) + (K, K, C)
    kernel = jnp.asarray(rng.standard_normal(kernel_shape), jnp.float32)
    return (x, kernel, cotangent), _value_and_grads(_reference, x, kernel, cotangent)


@functools.partial(jax.jit, static_argnums=0)
def _value_and_grads(conv, x, kernel, cotangent):
    y, vjp = jax.vjp(conv, x, kernel)
    return (y, *vjp(cotangent))


def _close(actual, expected):
    # Relative to the result's scale: sums of K² products cancel, so a near-zero entry
    # carries the rounding error of its largest terms.
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=lambda c: "B{}_{}x{}_C{}_K{}_{}".format(
        *c[:5], "per-sample" if c[5] else "static"
    ),
)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_values_and_gradients_match_reference(name, case):
    (x, kernel, cotangent), (y_ref, dx_ref, dk_ref) = _case(*case)
    conv = FUNCTIONS[name]
    if name in JITTED:
        y, dx, dk = _value_and_grads(conv, x, kernel, cotangent)
    else:
        y = conv(x, kernel)
        dx, dk = jax.vjp(conv, x, kernel)[1](cotangent)
    assert dk.shape == kernel.shape
    _close(y, y_ref)
    _close(dx, dx_ref)
    _close(dk, dk_ref)


def test_public_function_works_under_jit_and_vmap():
    (x, kernel, _), (expected, _, _) = _case(3, 7, 6, 4, 3, True)
    _close(jax.jit(depthwise_conv)(x, kernel), expected)
    # vmap over the batch with a static kernel per call = per-sample kernels.
    per_call = jax.vmap(lambda xi, ki: depthwise_conv(xi[None], ki)[0])(x, kernel)
    _close(per_call, expected)


@pytest.mark.parametrize("K", [3, 7])  # both CPU choices
def test_public_function_promotes_mixed_dtypes(K):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 6, 5, 4)), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal((K, K, 4)), jnp.float32)
    y, vjp = jax.vjp(depthwise_conv, x, kernel)
    dx, dk = vjp(jnp.ones_like(y))
    assert (y.dtype, dx.dtype, dk.dtype) == (jnp.float32, jnp.bfloat16, jnp.float32)
    _close(y, _reference(x.astype(jnp.float32), kernel))


@pytest.mark.parametrize(
    "x_shape, kernel_shape",
    [
        ((1, 8, 8, 4), (4, 4, 4)),  # even K
        ((1, 8, 8, 4), (15, 15, 4)),  # K > 13
        ((1, 8, 8, 4), (3, 5, 4)),  # not square
        ((1, 8, 8, 4), (3, 3, 5)),  # channels differ
        ((2, 8, 8, 4), (3, 3, 3, 4)),  # per-sample batch differs
        ((8, 8, 4), (3, 3, 4)),  # x not 4-D
        ((1, 8, 8, 4), (3, 3)),  # kernel 2-D
    ],
)
def test_rejects_bad_shapes(x_shape, kernel_shape):
    with pytest.raises(ValueError):
        depthwise_conv(jnp.zeros(x_shape), jnp.zeros(kernel_shape))


def test_formulation_choice_and_override(monkeypatch):
    monkeypatch.delenv("LLIC_DWCONV", raising=False)
    assert dwconv._choose("cpu", 3) == "tree_vjp"
    assert dwconv._choose("cpu", 11) == "tree_fft"
    assert dwconv._choose("gpu", 11) == "tree_fft"
    assert dwconv._choose("tpu", 11) == "xla"
    monkeypatch.setenv("LLIC_DWCONV", "shift")
    assert dwconv._choose("cpu", 11) == "shift"
    monkeypatch.setenv("LLIC_DWCONV", "no-such-formulation")
    with pytest.raises(ValueError, match="LLIC_DWCONV"):
        dwconv._choose("cpu", 11)
