import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.factorized import DeepFactorized


def _model(channels=4):
    module = DeepFactorized(channels)
    variables = module.init(jax.random.key(0), jnp.zeros((1, channels)), method="bits")
    return module, variables


def test_parameter_shapes_follow_filters_3_3_3():
    module, variables = _model(4)
    params = variables["params"]
    assert params["matrix0"].shape == (4, 3, 1) and params["matrix3"].shape == (4, 1, 3)
    assert params["bias3"].shape == (4, 1) and "factor3" not in params
    # Per channel: matrices 3+9+9+3, biases 3+3+3+1, factors 3+3+3 = 43.
    assert sum(p.size for p in jax.tree.leaves(params)) == 4 * 43


def test_initial_density_is_wide_and_normalised():
    module, variables = _model(3)
    k = jnp.arange(-200, 201, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
    p = module.apply(variables, k, method="likelihood")
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-3)
    # init_scale 10: the mass is spread over roughly ±10, not concentrated at 0.
    assert float(p.max()) < 0.2


def test_cdf_logits_are_increasing_after_random_updates():
    module, variables = _model(3)
    noisy = jax.tree.map(
        lambda p: p + jax.random.normal(jax.random.key(1), p.shape) * 2, variables
    )
    x = jnp.linspace(-30, 30, 601)[:, None] * jnp.ones((1, 3))
    logits = module.apply(noisy, x, method="logits_cdf")
    assert np.all(np.diff(np.asarray(logits), axis=0) > 0)


def test_tail_locations_hit_the_requested_mass():
    module, variables = _model(2)
    tail = 2.0**-10
    lower, upper = module.apply(variables, tail, method="tail_locations")
    cdf = lambda x: jax.nn.sigmoid(module.apply(variables, x[None], method="logits_cdf"))[
        0
    ]
    np.testing.assert_allclose(cdf(lower), tail / 2, rtol=1e-3)
    np.testing.assert_allclose(cdf(upper), 1 - tail / 2, rtol=1e-6)
    assert np.all(lower < upper)


def test_training_the_prior_lowers_the_bits_of_its_data():
    module, variables = _model(2)
    data = jnp.round(
        jax.random.normal(jax.random.key(2), (512, 2)) * jnp.array([0.5, 3.0])
    )

    def loss(v, rng):
        noisy = data + jax.random.uniform(rng, data.shape, minval=-0.5, maxval=0.5)
        return module.apply(v, noisy, method="bits").mean()

    step = jax.jit(lambda v, rng: jax.tree.map(
        lambda p, g: p - 0.05 * g, v, jax.grad(loss)(v, rng)))  # fmt: skip
    before = float(module.apply(variables, data, method="bits").mean())
    for i in range(300):
        variables = step(variables, jax.random.key(i))
    after = float(module.apply(variables, data, method="bits").mean())
    assert after < before - 1.0
