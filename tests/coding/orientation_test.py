"""Tests of llic_jax.coding.orientation and of coding in another orientation."""

import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container
from llic_jax.coding.codec import encode
from llic_jax.coding.orientation import (
    ORIENTATIONS,
    choose_orientation,
    orient,
    rd_costs,
    unorient,
)


def test_orientations_are_the_eight_distinct_symmetries_and_invert():
    img = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    turned = [orient(img, k) for k in ORIENTATIONS]
    assert len({t.tobytes() + bytes(t.shape) for t in turned}) == 8
    for k, t in zip(ORIENTATIONS, turned, strict=True):
        assert t.shape == ((5, 3, 2) if k % 2 else (3, 5, 2))
        np.testing.assert_array_equal(unorient(t, k), img)
    np.testing.assert_array_equal(orient(img, 1), np.rot90(img))  # counter-clockwise
    np.testing.assert_array_equal(orient(img, 4), img[:, ::-1])
    for bad in (-1, 8, 1.0, True):
        with pytest.raises(ValueError, match="orientation"):
            orient(img, bad)


@pytest.mark.parametrize("k", ORIENTATIONS)
def test_a_stream_coded_in_any_orientation_decodes_to_the_original_frame(
    k, photo, make_small_model
):
    model, variables = make_small_model("mbt2018-mean")
    img = np.ascontiguousarray(photo[100:117, 50:81])  # 17 x 31: not square
    encoded = encode(model, variables, img, orientation=k)
    header, _ = container.unpack(encoded.blob)
    assert header.orientation == k
    assert (header.height, header.width) == ((31, 17) if k % 2 else (17, 31))
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    assert decoded.shape == img.shape
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    # The same as coding the turned image plainly, turned back.
    plain = llic_jax.decompress(
        model, variables, llic_jax.compress(model, variables, orient(img, k))
    )
    np.testing.assert_array_equal(decoded, unorient(plain, k))


def test_choose_orientation_takes_the_lowest_estimated_cost(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = np.ascontiguousarray(photo[100:132, 50:98])
    lmbda = 0.01
    costs = rd_costs(model, variables, img, lmbda)
    assert costs.shape == (8,) and np.all(np.isfinite(costs))
    x_hat, bits = llic_jax.reconstruct(model, variables, img)
    mse = np.mean((x_hat.astype(np.float64) - img) ** 2)
    assert costs[0] == pytest.approx(bits / (32 * 48) + lmbda * mse)
    assert len(set(np.round(costs, 9))) > 1  # the model is not symmetric
    assert choose_orientation(model, variables, img, lmbda) == int(np.argmin(costs))
    with pytest.raises(ValueError, match="positive"):
        choose_orientation(model, variables, img, 0.0)
