import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.layers.llic_blocks import CTB, SCCT, SCST, STB, DepthRB, Gate


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(0), (2, 12, 10, 8))


def _init_apply(module, x):
    variables = module.init(jax.random.key(1), x)
    return variables, module.apply(variables, x)


@pytest.mark.parametrize("module", [DepthRB(), SCST(5), SCST(5, dynamic=False), SCCT(),
                                    Gate(), STB(7), CTB()])  # fmt: skip
def test_blocks_keep_the_shape_and_have_finite_gradients(module, x):
    variables, y = _init_apply(module, x)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    grads = jax.grad(lambda v: jnp.sum(module.apply(v, x) ** 2))(variables)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_scct_starts_as_identity_and_scales_channels_per_sample(x):
    module = SCCT()
    variables, y = _init_apply(module, x)
    np.testing.assert_allclose(y, x, rtol=1e-6)
    # With a non-zero last layer the factors depend on each sample's own content.
    params = jax.tree.map(lambda p: p + 0.3, variables)
    y = module.apply(params, x)
    ratio = y / x
    assert np.allclose(ratio, ratio[:, :1, :1, :], rtol=1e-4)  # constant over space
    assert not np.allclose(ratio[0, 0, 0], ratio[1, 0, 0])  # differs between samples
    assert np.all((ratio > 0) & (ratio < 2))


def test_scst_generates_per_sample_kernels_from_the_input(x):
    module = SCST(5, num_kernels=3)
    variables = module.init(jax.random.key(1), x)
    bank = variables["params"]["kernel_bank"]
    assert bank.shape == (3, 5, 5, 8)
    # Swapping the two samples swaps the outputs: no cross-talk through the generator.
    # (Random perturbation: the generator's last layer starts at zero, i.e. uniform.)
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    perturbed = jax.tree.unflatten(
        tree,
        [
            p + 0.5 * jax.random.normal(k, p.shape)
            for p, k in zip(leaves, keys, strict=True)
        ],
    )
    y = module.apply(perturbed, x)
    y_swapped = module.apply(perturbed, x[::-1])
    np.testing.assert_allclose(y_swapped, y[::-1], rtol=1e-5, atol=1e-6)
    # A sample's output depends on its own global content (the generated kernel), not
    # just its local neighbourhood: change a far-away corner and the centre moves.
    x2 = x.at[0, -1, -1, :].add(50.0)
    centre = (slice(0, 1), slice(3, 5), slice(3, 5))
    assert not np.allclose(module.apply(perturbed, x2)[centre], y[centre])


def test_static_scst_is_translation_local(x):
    module = SCST(3, dynamic=False)
    variables = module.init(jax.random.key(1), x)
    y = module.apply(variables, x)
    x2 = x.at[0, -1, -1, :].add(50.0)
    # A 3×3 kernel (plus 1×1 convs) cannot see 6 pixels away.
    np.testing.assert_allclose(
        module.apply(variables, x2)[0, :4, :4], y[0, :4, :4], atol=1e-5
    )
