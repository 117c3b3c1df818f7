import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.entropy.gaussian import (
    SCALE_TABLE,
    gaussian_bits,
    gaussian_likelihood,
    scale_to_index,
    symbol_bits,
)


def test_scale_table_is_the_standard_log_table():
    assert SCALE_TABLE.shape == (64,)
    np.testing.assert_allclose(SCALE_TABLE[[0, 1, -1]], [0.11, 0.1244, 256.0], rtol=1e-3)
    ratios = SCALE_TABLE[1:] / SCALE_TABLE[:-1]
    np.testing.assert_allclose(ratios, 1.13095, rtol=1e-4)


@pytest.mark.parametrize(
    "scale, index", [(0.05, 0), (0.11, 0), (0.12, 1), (1.0, 18), (256.0, 63), (300.0, 63)]
)
def test_scale_to_index_takes_the_first_entry_not_below(scale, index):
    # Values from CompressAI's GaussianConditional.build_indexes (notes/baselines.md §5.3).
    assert int(scale_to_index(jnp.float32(scale))) == index


@pytest.mark.parametrize("scale", [0.11, 0.5, 3.0, 40.0])
def test_likelihoods_of_integers_sum_to_one(scale):
    k = jnp.arange(-2000, 2001, dtype=jnp.float32)
    total = float(gaussian_likelihood(k, jnp.float32(scale)).sum())
    assert abs(total - 1.0) < 1e-4


def test_likelihood_is_symmetric_bounded_and_stable_in_the_tails():
    v = jnp.array([-50.0, -3.0, 3.0, 50.0])
    p = gaussian_likelihood(v, jnp.float32(1.0))
    assert p[0] == p[3] and p[1] == p[2]
    assert float(p.min()) >= np.float32(1e-9)  # the likelihood bound, far in the tail
    bits = gaussian_bits(v, jnp.float32(1.0))
    assert np.all(np.isfinite(bits)) and float(bits.max()) <= -np.log2(1e-9) + 1e-3


def test_bits_have_finite_gradients_wrt_residual_and_scale():
    grads = jax.grad(lambda r, s: gaussian_bits(r, s).sum(), argnums=(0, 1))(
        jnp.array([0.0, 0.3, 4.0, 30.0]), jnp.array([0.05, 0.5, 2.0, 1.0])
    )
    for g in grads:
        assert np.all(np.isfinite(g))
    # Below the 0.11 bound, growing the scale must still be encouraged for a far residual.
    assert float(grads[1][0]) <= 0.0


def test_symbol_bits_uses_the_table_scale():
    index = jnp.array([0, 18, 63])
    symbols = jnp.array([0, 1, -5])
    expected = gaussian_bits(symbols.astype(jnp.float32), jnp.asarray(SCALE_TABLE)[index])
    np.testing.assert_allclose(symbol_bits(symbols, index), expected)
