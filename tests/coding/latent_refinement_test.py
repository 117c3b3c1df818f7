import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import llic_jax
from llic_jax.coding.codec import encode, fingerprint, pad_image
from llic_jax.coding.latent_refinement import Refinement, _rd_cost, refine_latents
from llic_jax.layers.post_filter import PostFilter
from llic_jax.post_filter_weights import LoadedPostFilter

# One schedule for every test that compiles a refinement: compiled once per model.
SHORT = Refinement(lmbda=0.01, steps=4, learning_rate=2e-2)


def _crop(photo):
    return np.ascontiguousarray(photo[100:164, 50:114])


@pytest.mark.parametrize("name", ["mbt2018-mean", "llic-elic", "llic-stf"])
def test_relaxed_forward_with_rounding_is_the_eval_forward(name, photo, make_small_model):
    model, variables = make_small_model(name)
    params = {"params": variables["params"]}
    x, _ = pad_image(model, _crop(photo))
    y, z = model.apply(params, x, method="analysis")
    x_relaxed, bits_relaxed = model.apply(
        params, y, z, jnp.round, method="relaxed_forward"
    )
    x_eval, bits_eval = model.apply(params, x, method="eval_forward")
    # The same symbols (up to a rare flip: another traced function rounds them) ...
    assert float(jnp.mean(jnp.abs(x_relaxed - x_eval) < 1e-3)) > 0.99
    # ... rated under continuous scales rather than the coder's 64-entry table.
    eval_total = float(bits_eval["y"].sum() + bits_eval["z"].sum())
    assert float(bits_relaxed.sum()) == pytest.approx(eval_total, rel=0.05)


def test_refinement_lowers_the_rd_cost_and_decodes_bit_exactly(photo, make_small_model):
    model, variables = make_small_model("llic-elic")
    img = _crop(photo)
    x, size = pad_image(model, img)
    y, z = model.apply({"params": variables["params"]}, x, method="analysis")
    (y_refined, _), costs = refine_latents(
        model, variables["params"], x, size, y, z, SHORT
    )
    assert costs["cost_after"] < costs["cost_before"]
    assert not np.array_equal(y_refined, y)

    plain = encode(model, variables, img)
    refined = encode(model, variables, img, refinement=SHORT)
    assert refined.blob != plain.blob
    np.testing.assert_array_equal(
        llic_jax.decompress(model, variables, refined.blob), refined.reconstruction
    )
    # Deterministic: the Gumbel noise is seeded.
    assert llic_jax.compress(model, variables, img, refinement=SHORT) == refined.blob


def _with_a_filter(photo, make_small_model, shift, ensemble_gain=1.0):
    """A small model, a padded crop, its analysis latents and a post-filter whose
    parameters are `shift(initial)`."""
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo)
    x, size = pad_image(model, img)
    y, z = model.apply({"params": variables["params"]}, x, method="analysis")
    module = PostFilter(width=8, blocks=1)
    filter_params = jax.tree.map(shift, module.init(jax.random.key(0), x)["params"])
    post_filter = LoadedPostFilter(
        module, filter_params, fingerprint(variables), ensemble_gain
    )
    return model, variables, img, x, size, y, z, post_filter


def test_with_a_post_filter_the_distortion_is_measured_after_it(photo, make_small_model):
    model, variables, img, x, size, y, z, post_filter = _with_a_filter(
        photo,
        make_small_model,
        lambda p: p + 0.01,  # not the identity
    )
    params = variables["params"]

    (y_filtered, _), costs = refine_latents(
        model, params, x, size, y, z, SHORT, post_filter=post_filter
    )
    (y_plain, _), plain_costs = refine_latents(model, params, x, size, y, z, SHORT)
    weight = jnp.ones(x.shape[:3] + (1,), x.dtype)  # the crop fills its padded size
    assert x.shape[1:3] == size
    after_filter = _rd_cost(
        model, params, y, z, x, weight, SHORT.lmbda, jnp.round, post_filter
    )
    assert costs["cost_before"] == pytest.approx(float(after_filter), rel=1e-5)
    assert costs["cost_before"] != pytest.approx(plain_costs["cost_before"], rel=1e-3)
    assert costs["cost_after"] < costs["cost_before"]
    assert not np.array_equal(y_filtered, y_plain)

    encoded = encode(model, variables, img, refinement=SHORT, post_filter=post_filter)
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=post_filter)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_refining_for_the_ensemble_costs_what_the_decoder_shows(photo, make_small_model):
    # Not the identity, and not invariant to turning the image: the eight passes differ.
    model, variables, img, x, size, y, z, post_filter = _with_a_filter(
        photo,
        make_small_model,
        lambda p: p + 0.02 * jax.random.normal(jax.random.key(1), p.shape),
        ensemble_gain=1.25,
    )
    params = variables["params"]
    (y_ensemble, z_ensemble), costs = refine_latents(
        model, params, x, size, y, z, SHORT, post_filter=post_filter, ensemble=True
    )
    (y_single, _), single_costs = refine_latents(
        model, params, x, size, y, z, SHORT, post_filter=post_filter
    )
    weight = jnp.ones(x.shape[:3] + (1,), x.dtype)

    def ensemble_cost(y, z):
        shown = functools.partial(post_filter, ensemble=True)
        return float(
            _rd_cost(model, params, y, z, x, weight, SHORT.lmbda, jnp.round, shown)
        )

    assert costs["cost_before"] == pytest.approx(ensemble_cost(y, z), rel=1e-5)
    assert costs["cost_after"] == pytest.approx(
        ensemble_cost(y_ensemble, z_ensemble), rel=1e-5
    )
    assert costs["cost_before"] != pytest.approx(single_costs["cost_before"], rel=1e-4)
    assert costs["cost_after"] < costs["cost_before"]
    assert not np.array_equal(y_ensemble, y_single)
    with pytest.raises(ValueError, match="ensemble needs a post-filter"):
        refine_latents(model, params, x, size, y, z, SHORT, ensemble=True)

    encoded = encode(model, variables, img, refinement=SHORT, post_filter=post_filter,
                     post_filter_ensemble=True)  # fmt: skip
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=post_filter)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_refinement_that_does_not_pay_keeps_the_analysis_latents(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo)
    # Steps this large throw the latents far away: the guard must fall back.
    wild = Refinement(lmbda=0.01, steps=2, learning_rate=50.0)
    x, size = pad_image(model, img)
    y, z = model.apply({"params": variables["params"]}, x, method="analysis")
    (y_kept, z_kept), costs = refine_latents(
        model, variables["params"], x, size, y, z, wild
    )
    np.testing.assert_array_equal(y_kept, y)
    np.testing.assert_array_equal(z_kept, z)
    assert costs["cost_after"] == costs["cost_before"]
    assert llic_jax.compress(model, variables, img, refinement=wild) == llic_jax.compress(
        model, variables, img
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lmbda": 0.0}, "λ"),
        ({"lmbda": float("nan")}, "λ"),
        ({"lmbda": 0.01, "steps": 0}, "steps"),
        ({"lmbda": 0.01, "learning_rate": -1.0}, "learning rate"),
        ({"lmbda": 0.01, "learning_rate": float("inf")}, "learning rate"),
        ({"lmbda": 0.01, "temperatures": (0.05, 0.5)}, "temperatures"),
    ],
)
def test_bad_refinement_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Refinement(**kwargs)


def test_temperature_falls_geometrically_from_first_to_last():
    schedule = Refinement(lmbda=0.01, steps=5, temperatures=(0.5, 0.05))
    temperatures = [float(schedule.temperature(jnp.asarray(i))) for i in range(5)]
    np.testing.assert_allclose(temperatures[0], 0.5)
    np.testing.assert_allclose(temperatures[-1], 0.05, rtol=1e-6)
    ratios = np.array(temperatures[1:]) / np.array(temperatures[:-1])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)
    assert jax.numpy.all(jnp.diff(jnp.asarray(temperatures)) < 0)


def test_learning_rate_is_optax_cosine_decay_to_zero():
    import optax

    schedule = Refinement(lmbda=0.01, steps=7, learning_rate=3e-2)
    expected = optax.cosine_decay_schedule(3e-2, 7)
    for i in range(8):
        np.testing.assert_allclose(
            schedule.learning_rate_at(jnp.int32(i)), expected(i), rtol=1e-6, atol=1e-9
        )
    assert float(schedule.learning_rate_at(jnp.int32(7))) == pytest.approx(0.0, abs=1e-9)


def test_the_distortion_is_counted_where_the_image_is_placed(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    params = variables["params"]
    img = np.ascontiguousarray(photo[100:150, 50:90])  # 50 x 40 in a 64 x 64 canvas
    placement = (8, 16)
    x, size = pad_image(model, img, placement)
    y, z = model.apply({"params": params}, x, method="analysis")
    _, costs = refine_latents(model, params, x, size, y, z, SHORT, placement=placement)

    def hard_cost(top, left):
        weight = jnp.zeros((1, 64, 64, 1)).at[:, top : top + 50, left : left + 40].set(1)
        return float(_rd_cost(model, params, y, z, x, weight, 0.01, jnp.round))

    assert costs["cost_before"] == pytest.approx(hard_cost(*placement), rel=1e-5)
    assert costs["cost_before"] != pytest.approx(hard_cost(0, 0), rel=1e-3)
    # and the codec refines at its own (centred) placement, decoding bit-exactly
    refined = encode(model, variables, img, refinement=SHORT)
    np.testing.assert_array_equal(
        llic_jax.decompress(model, variables, refined.blob), refined.reconstruction
    )


def test_refining_at_a_coarseness_serves_the_coarser_coder(photo, make_small_model):
    from llic_jax.entropy.coarseness import latent_step

    model, variables = make_small_model("llic-elic")
    params = {"params": variables["params"]}
    img = _crop(photo)
    x, size = pad_image(model, img)
    y, z = model.apply(params, x, method="analysis")
    # with hard rounding, the relaxed forward at step r**3 is the eval forward at 3
    x_relaxed, bits_relaxed = model.apply(
        params, y, z, jnp.round, latent_step(3), method="relaxed_forward"
    )
    x_eval, bits_eval = model.apply(params, x, 3, method="eval_forward")
    assert float(jnp.mean(jnp.abs(x_relaxed - x_eval) < 1e-3)) > 0.99
    eval_total = float(bits_eval["y"].sum() + bits_eval["z"].sum())
    assert float(bits_relaxed.sum()) == pytest.approx(eval_total, rel=0.05)
    own_total = model.apply(params, x, method="eval_forward")[1]
    assert eval_total < float(own_total["y"].sum() + own_total["z"].sum())

    refined = encode(model, variables, img, refinement=SHORT, coarseness=3)
    np.testing.assert_array_equal(
        llic_jax.decompress(model, variables, refined.blob), refined.reconstruction
    )
    (_, _), costs = refine_latents(
        model, variables["params"], x, size, y, z, SHORT, coarseness=3
    )
    assert costs["cost_after"] < costs["cost_before"]
    assert refined.blob != encode(model, variables, img, coarseness=3).blob
