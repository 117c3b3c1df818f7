import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.coding.orientation import orient
from llic_jax.layers.post_filter import PostFilter, dihedral_mean, space_to_depth
from llic_jax.layers.transposed_conv import depth_to_space


def test_space_to_depth_is_the_inverse_of_depth_to_space():
    x = jnp.arange(2 * 6 * 4 * 3, dtype=jnp.float32).reshape(2, 6, 4, 3)
    folded = space_to_depth(x, 2)
    assert folded.shape == (2, 3, 2, 12)
    np.testing.assert_array_equal(depth_to_space(folded, 2), x)
    # Each 2×2 patch's pixels, row-major, then the channels.
    np.testing.assert_array_equal(folded[0, 0, 0], x[0, :2, :2].reshape(-1))


def test_an_untrained_filter_is_the_identity():
    module = PostFilter(width=8, blocks=2)
    x = jax.random.uniform(jax.random.key(0), (1, 16, 12, 3))
    params = module.init(jax.random.key(1), x)["params"]
    np.testing.assert_array_equal(module.apply({"params": params}, x), x)


def test_the_filter_changes_the_image_once_its_head_is_not_zero():
    module = PostFilter(width=8, blocks=1)
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    params = module.init(jax.random.key(1), x)["params"]
    params = jax.tree.map(lambda p: p + 0.1, params)
    out = module.apply({"params": params}, x)
    assert out.shape == x.shape
    assert float(jnp.abs(out - x).mean()) > 1e-3


def test_odd_sizes_are_refused():
    module = PostFilter(width=8, blocks=1)
    with pytest.raises(ValueError, match="even height and width"):
        module.init(jax.random.key(0), jnp.zeros((1, 15, 16, 3)))


def _orient(x, k):  # the codec's numbering (coding/orientation.py), on [1, H, W, C]
    return orient(np.asarray(x)[0], k)[None]


def test_the_dihedral_mean_of_a_filter_is_equivariant_and_differs_from_it():
    module = PostFilter(width=8, blocks=1)
    x = jax.random.uniform(jax.random.key(0), (1, 8, 12, 3))
    params = module.init(jax.random.key(1), x)["params"]
    params = jax.tree.map(
        lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params
    )

    def fn(v):
        return module.apply({"params": params}, v)

    mean = np.asarray(dihedral_mean(fn, x))
    assert mean.shape == x.shape
    assert np.abs(mean - np.asarray(fn(x))).max() > 1e-3  # the filter is not symmetric
    for k in range(8):
        turned = np.asarray(dihedral_mean(fn, jnp.asarray(_orient(x, k))))
        np.testing.assert_allclose(turned, _orient(mean, k), atol=1e-5)


def test_the_dihedral_mean_of_the_identity_is_the_identity():
    x = jax.random.uniform(jax.random.key(0), (2, 6, 4, 3))
    np.testing.assert_allclose(dihedral_mean(lambda v: v, x), x, atol=1e-6)
    # and of a map that only shifts: the mean of the eight shifts, not the input
    shifted = dihedral_mean(lambda v: jnp.roll(v, 1, axis=2), x)
    assert float(jnp.abs(shifted - x).max()) > 1e-3
