import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.layers.post_filter import PostFilter
from llic_jax.post_filter_weights import load_post_filter, save_post_filter
from llic_jax.weights import WeightsError


@pytest.fixture
def trained_filter():
    module = PostFilter(width=8, blocks=1)
    params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    return module, jax.tree.map(lambda p: p + 0.25, params)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, trained_filter, dtype):
    module, params = trained_filter
    path = tmp_path / "f.safetensors"
    save_post_filter(path, module, params, b"\x01" * 8, {"steps": "7"}, dtype)
    loaded = load_post_filter(path)
    assert (loaded.module.width, loaded.module.blocks) == (8, 1)
    assert loaded.codec_fingerprint == b"\x01" * 8
    tolerance = 0 if dtype == "float32" else 1e-3
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded.params), strict=True):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=tolerance)
    x = jax.random.uniform(jax.random.key(2), (1, 8, 6, 3))
    stored = jax.tree.map(lambda p: p.astype(dtype).astype(np.float32), params)
    np.testing.assert_allclose(loaded(x), module.apply({"params": stored}, x), rtol=1e-5)


def test_a_model_weights_file_is_not_a_post_filter(small_weights_file):
    with pytest.raises(WeightsError, match="not a post-filter file"):
        load_post_filter(small_weights_file)


def test_tensors_that_do_not_fit_are_refused(tmp_path, trained_filter):
    module, params = trained_filter
    path = tmp_path / "f.safetensors"
    save_post_filter(path, module, params, b"\x00" * 8)
    # Claim more blocks than the tensors hold.
    from safetensors.numpy import load_file, save_file

    from llic_jax.weights import read_safetensors_metadata

    metadata = read_safetensors_metadata(path) | {"blocks": "2"}
    save_file(load_file(str(path)), str(path), metadata=metadata)
    with pytest.raises(WeightsError, match="do not fit"):
        load_post_filter(path)


def _ensemble_mean(module, params, x):
    from llic_jax.layers.post_filter import dihedral_mean

    return dihedral_mean(lambda v: module.apply({"params": params}, v), x)


def test_a_file_without_a_gain_decodes_the_plain_mean(tmp_path, trained_filter):
    module, params = trained_filter
    path = tmp_path / "f.safetensors"
    save_post_filter(path, module, params, b"\x01" * 8)
    from llic_jax.weights import read_safetensors_metadata

    assert "ensemble_gain" not in read_safetensors_metadata(path)
    loaded = load_post_filter(path)
    assert loaded.ensemble_gain == 1.0
    x = jax.random.uniform(jax.random.key(3), (1, 8, 6, 3))
    # Bit for bit: streams of filters from before the gain must decode as they did.
    np.testing.assert_array_equal(
        loaded(x, ensemble=True),
        jax.jit(_ensemble_mean, static_argnums=0)(module, params, x),
    )


def test_the_ensemble_gain_scales_the_ensemble_residual_only(tmp_path, trained_filter):
    module, params = trained_filter
    plain, scaled = tmp_path / "plain.safetensors", tmp_path / "scaled.safetensors"
    save_post_filter(plain, module, params, b"\x01" * 8)
    save_post_filter(scaled, module, params, b"\x01" * 8, ensemble_gain=1.15)
    a, b = load_post_filter(plain), load_post_filter(scaled)
    assert b.ensemble_gain == 1.15 and a.digest() != b.digest()
    x = jax.random.uniform(jax.random.key(4), (1, 8, 6, 3))
    np.testing.assert_array_equal(a(x), b(x))  # the single pass is the same
    mean = a(x, ensemble=True)
    assert float(jnp.abs(mean - x).max()) > 1e-3
    np.testing.assert_allclose(b(x, ensemble=True), x + 1.15 * (mean - x), atol=1e-6)


@pytest.mark.parametrize("gain", ["0", "-1", "nan", "inf", "5", "x"])
def test_a_file_with_an_unusable_gain_is_refused(tmp_path, trained_filter, gain):
    module, params = trained_filter
    path = tmp_path / "f.safetensors"
    save_post_filter(path, module, params, b"\x00" * 8)
    from safetensors.numpy import load_file, save_file

    from llic_jax.weights import read_safetensors_metadata

    metadata = read_safetensors_metadata(path) | {"ensemble_gain": gain}
    save_file(load_file(str(path)), str(path), metadata=metadata)
    with pytest.raises(WeightsError, match="bad post-filter description"):
        load_post_filter(path)


def test_saving_an_unusable_gain_is_refused(tmp_path, trained_filter):
    module, params = trained_filter
    path = tmp_path / "f.safetensors"
    with pytest.raises(ValueError, match="ensemble gain 0.0 is not in"):
        save_post_filter(path, module, params, b"\x00" * 8, ensemble_gain=0.0)
    assert not path.exists()
