import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.ops import add_uniform_noise, lower_bound, ste_round


def test_ste_round_rounds_forward_and_passes_gradient():
    x = jnp.array([-1.7, -0.5, 0.2, 0.5, 1.5, 2.49])
    np.testing.assert_array_equal(ste_round(x), jnp.round(x))
    grad = jax.grad(lambda v: jnp.sum(ste_round(v) * jnp.arange(6.0)))(x)
    np.testing.assert_array_equal(grad, jnp.arange(6.0))


def test_uniform_noise_is_bounded_centred_and_keyed():
    x = jnp.zeros((100_000,))
    noisy = add_uniform_noise(x, jax.random.key(0))
    assert float(noisy.min()) >= -0.5 and float(noisy.max()) <= 0.5
    assert abs(float(noisy.mean())) < 0.01
    assert abs(float(noisy.var()) - 1 / 12) < 0.002
    np.testing.assert_array_equal(noisy, add_uniform_noise(x, jax.random.key(0)))
    assert not np.array_equal(noisy, add_uniform_noise(x, jax.random.key(1)))


def test_lower_bound_forward():
    x = jnp.array([-1.0, 0.1, 0.11, 3.0])
    np.testing.assert_allclose(lower_bound(x, 0.11), [0.11, 0.11, 0.11, 3.0])


@pytest.mark.parametrize(
    "x, upstream, expected",
    [
        (2.0, 1.0, 1.0),  # above the bound: passes
        (2.0, -1.0, -1.0),
        (0.0, -1.0, -1.0),  # below, a descent step pushes x up: passes
        (0.0, 1.0, 0.0),  # below, a descent step pushes x further down: blocked
    ],
)
def test_lower_bound_gradient_semantics(x, upstream, expected):
    grad = jax.grad(lambda v: upstream * lower_bound(v, 1.0))(jnp.float32(x))
    assert float(grad) == expected


def test_lower_bound_with_array_bound_and_jit():
    f = jax.jit(jax.grad(lambda v: jnp.sum(lower_bound(v, jnp.array([0.0, 1.0])))))
    np.testing.assert_array_equal(f(jnp.array([0.5, 0.5])), [1.0, 0.0])
