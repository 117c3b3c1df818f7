import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.layers import GDN


def test_gdn_and_inverse_follow_the_formula_at_init():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4)) * 3
    layer = GDN()
    variables = layer.init(jax.random.key(1), x)
    # At init beta = 1 and gamma = 0.1·I (up to the 2⁻¹⁸ pedestal).
    expected = x / jnp.sqrt(1.0 + 0.1 * x**2)
    np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-4)
    inverse = GDN(inverse=True).apply(variables, x)
    np.testing.assert_allclose(inverse, x * jnp.sqrt(1.0 + 0.1 * x**2), rtol=1e-4)


def test_gdn_parameters_stay_nonnegative_under_updates():
    x = jnp.ones((1, 2, 2, 3))
    layer = GDN()
    variables = layer.init(jax.random.key(0), x)
    # Push the stored values far negative: the effective beta stays ≥ beta_min.
    pushed = jax.tree.map(lambda p: p - 10.0, variables)
    out = layer.apply(pushed, x)
    assert np.all(np.isfinite(out))
    beta_min_output = x / np.sqrt(1e-6)
    assert np.all(np.asarray(out) <= beta_min_output + 1e-3)
