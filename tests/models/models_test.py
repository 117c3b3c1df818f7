import jax
import jax.numpy as jnp
import numpy as np
import pytest

import llic_jax
from llic_jax.losses import rate_distortion_loss
from llic_jax.models import model_config


def test_registry_names_are_hyphenated_and_include_the_references():
    names = llic_jax.list_models()
    assert {"bmshj2018-hyperprior", "mbt2018-mean"} <= set(names)
    assert all(n == n.lower() and "_" not in n for n in names)


def test_unknown_model_and_unknown_option_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        llic_jax.create_model("no-such-model")
    with pytest.raises(ValueError, match="no option"):
        llic_jax.create_model("mbt2018-mean", K=3)


def test_model_config_rebuilds_the_model():
    model = llic_jax.create_model("mbt2018-mean", N=32)
    config = model_config(model)
    assert config == {"name": "mbt2018-mean", "options": {"N": 32, "M": 192}}
    assert llic_jax.create_model(config["name"], **config["options"]) == model


@pytest.mark.parametrize(
    "name, params",
    # N=128, M=192 (CompressAI's sizes for qualities 1–5). By hand for g_a:
    # 5·5·3·128+128 + 2·(5·5·128·128+128) + 5·5·128·192+192 + 3·(128²+128) = 1,493,312.
    [("bmshj2018-hyperprior", 5_073_539), ("mbt2018-mean", 7_025_699)],
)
def test_full_size_parameter_counts(name, params):
    model = llic_jax.create_model(name)
    shapes = jax.eval_shape(lambda: llic_jax.init(model, jax.random.key(0), (64, 64)))
    assert sum(np.prod(a.shape) for a in jax.tree.leaves(shapes)) == params
    assert set(shapes["params"]) == {"g_a", "g_s", "h_a", "h_s", "entropy_bottleneck"}


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_training_forward_and_gradients(name, make_small_model):
    model, variables = make_small_model(name)
    x = jax.random.uniform(jax.random.key(0), (2, 64, 128, 3))

    def loss(params):
        x_hat, bits = model.apply(
            {"params": params}, x, rngs={"noise": jax.random.key(1)}
        )
        assert x_hat.shape == x.shape and bits["y"].shape == (2,)
        return rate_distortion_loss(x, x_hat, bits, 0.01)[0]

    value, grads = jax.value_and_grad(loss)(variables["params"])
    assert np.isfinite(float(value))
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = jax.tree_util.keystr(path)
        norm = float(jnp.linalg.norm(g))
        assert np.isfinite(norm), name
        # At init z rounds to 0 everywhere: h_s sees only zeros (and, with ReLUs and
        # zero biases, passes no gradient at all).
        if "h_s" not in name:
            assert norm > 0, name


def test_eval_forward_rounds_and_counts_positive_bits(make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    x = jax.random.uniform(jax.random.key(0), (1, 64, 64, 3))
    x_hat, bits = model.apply(variables, x, train=False)
    assert x_hat.shape == x.shape
    assert float(bits["y"][0]) > 0 and float(bits["z"][0]) > 0
    again = model.apply(variables, x, method="eval_forward")
    np.testing.assert_array_equal(x_hat, again[0])
