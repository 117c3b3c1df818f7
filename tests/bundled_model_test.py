"""The bundled default model: loads, round-trips real photos, and its rate is honest."""

import numpy as np
import pytest

import llic_jax
from llic_jax.coding.codec import encode


@pytest.fixture(scope="module")
def bundled():
    return llic_jax.load_weights()


def test_bundled_weights_load_with_tables(bundled):
    model, variables = bundled
    assert model.model_name == "mbt2018-mean"
    assert set(variables["tables"]) == {"y", "z"}


@pytest.mark.parametrize("size", [(1, 1), (17, 31), (64, 64), (500, 500)])
def test_round_trip_on_the_sample_photo(bundled, photo, size):
    model, variables = bundled
    img = np.ascontiguousarray(photo[: size[0], : size[1]])
    encoded = encode(model, variables, img)
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    forward, bits = llic_jax.reconstruct(model, variables, img)
    assert (np.abs(forward.astype(int) - decoded.astype(int)) <= 1).mean() >= 0.999
    if size == (500, 500):
        # Real bits (container included) within 1% + 100 bytes of the estimate.
        assert 8 * len(encoded.blob) <= bits * 1.01 + 800


def test_round_trip_on_a_bsds_photo(bundled, bsds_photo):
    model, variables = bundled
    encoded = encode(model, variables, bsds_photo)
    np.testing.assert_array_equal(
        llic_jax.decompress(model, variables, encoded.blob), encoded.reconstruction
    )
