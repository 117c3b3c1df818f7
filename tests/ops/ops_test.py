import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.ops import add_uniform_noise, annealed_round, lower_bound, ste_round


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


def test_annealed_round_stays_between_the_neighbouring_integers():
    x = jax.random.uniform(jax.random.key(0), (10_000,), minval=-5.0, maxval=5.0)
    soft = annealed_round(x, jax.random.key(1), 0.5)
    assert bool(jnp.all(soft >= jnp.floor(x))) and bool(jnp.all(soft <= jnp.ceil(x)))
    # Random but keyed: the same key gives the same draw.
    np.testing.assert_array_equal(soft, annealed_round(x, jax.random.key(1), 0.5))
    assert not np.array_equal(soft, annealed_round(x, jax.random.key(2), 0.5))


def test_annealed_round_hardens_into_rounding_as_the_temperature_falls():
    # Away from the half-way points, where both neighbours stay equally likely.
    x = jnp.array([-2.8, -1.3, -0.1, 0.2, 0.7, 3.9, 4.35])
    cold = annealed_round(x, jax.random.key(0), 0.01)
    np.testing.assert_allclose(cold, jnp.round(x), atol=1e-3)
    # Warm, the nearer integer wins more often than not, and not always.
    many = jnp.full((20_000,), 0.3)
    hard_choices = jnp.round(annealed_round(many, jax.random.key(0), 0.5))
    share_of_floor = float(jnp.mean(hard_choices == 0.0))
    assert 0.55 < share_of_floor < 0.99


def test_annealed_round_has_a_finite_nonzero_gradient():
    x = jnp.array([-1.4, 0.01, 0.5, 2.99])
    grad = jax.grad(lambda v: annealed_round(v, jax.random.key(0), 0.3).sum())(x)
    assert bool(jnp.all(jnp.isfinite(grad))) and bool(jnp.any(grad != 0))
