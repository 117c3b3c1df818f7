import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.layers.post_filter import PostFilter, space_to_depth
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
