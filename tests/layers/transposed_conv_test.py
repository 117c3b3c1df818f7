import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.layers import TransposedConv, depth_to_space


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(2, 7, 9, 6), (1, 1, 1, 4), (1, 4, 6, 3)])
def test_matches_flax_conv_transpose_values_and_gradients(kernel, shape):
    x = jax.random.normal(jax.random.key(0), shape)
    reference = nn.ConvTranspose(5, (kernel, kernel), (2, 2), "SAME")
    variables = reference.init(jax.random.key(1), x)
    ours = TransposedConv(5, kernel)
    np.testing.assert_allclose(
        ours.apply(variables, x), reference.apply(variables, x), atol=1e-5
    )

    def loss(module):
        return lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))

    g_ref = jax.grad(loss(reference), argnums=(0, 1))(variables, x)
    g_ours = jax.grad(loss(ours), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_depth_to_space_places_channels_as_phases():
    x = jnp.arange(2 * 3 * 4 * 8).reshape(2, 3, 4, 8)
    y = depth_to_space(x, 2)
    assert y.shape == (2, 6, 8, 2)
    # channel (r, s, c) of pixel (i, j) lands on pixel (2i + r, 2j + s), channel c.
    assert y[1, 2 * 2 + 1, 2 * 3 + 0, 1] == x[1, 2, 3, (1 * 2 + 0) * 2 + 1]
