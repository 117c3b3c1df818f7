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
