"""Tests of llic_jax.coding.placement: the default placement and the search."""

import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container, orientation, placement
from llic_jax.coding.codec import encode
from llic_jax.coding.placement import (
    candidate_placements,
    centred_placement,
    choose_orientation_and_placement,
    choose_placement,
    rd_costs,
)


@pytest.fixture(scope="module")
def small(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    assert model.pad_multiple == 64
    img = np.ascontiguousarray(photo[100:151, 50:83])  # 51 x 33: 13 and 31 to place
    return model, variables, img


def test_centred_placement_splits_the_padding_in_steps_of_4(small):
    model, _, _ = small
    assert centred_placement(model, 51, 33) == (8, 16)  # 13 and 31 to place
    assert centred_placement(model, 52, 32) == (8, 16)  # 12 → 6, between 4 and 8: up
    assert centred_placement(model, 64, 128) == (0, 0)  # nothing to place
    assert centred_placement(model, 62, 60) == (0, 4)  # 2 → 1 → 0; 4 → 2 → 4
    assert centred_placement(model, 1, 65) == (32, 32)


def test_candidates_span_the_padding_centred_first(small):
    model, _, _ = small
    candidates = candidate_placements(model, 51, 33)
    assert candidates[0] == (8, 16)
    assert len(candidates) == len(set(candidates)) == 20
    assert {top for top, _ in candidates} == {0, 4, 8, 12}
    assert {left for _, left in candidates} == {0, 8, 16, 20, 28}
    assert candidate_placements(model, 64, 64) == [(0, 0)]
    assert candidate_placements(model, 64, 60) == [(0, 4), (0, 0)]
    assert len(candidate_placements(model, 1, 1)) == 25  # 63 to place: 5 of 16 steps


def test_rd_costs_are_those_of_the_eval_forward_at_each_placement(small):
    model, variables, img = small
    lmbda = 0.01
    places = [(0, 0), (8, 16), (13, 31)]
    costs = rd_costs(model, variables, img, lmbda, places)
    assert costs.shape == (3,) and len(set(costs.tolist())) == 3
    for place, cost in zip(places, costs, strict=True):
        x_hat, bits = llic_jax.reconstruct(model, variables, img, placement=place)
        mse = np.mean((x_hat.astype(np.float64) - img) ** 2)
        assert cost == pytest.approx(bits / img[..., 0].size + lmbda * mse)


def test_choose_placement_takes_the_cheapest_and_the_centre_on_ties(small, monkeypatch):
    model, variables, img = small
    candidates = candidate_placements(model, *img.shape[:2])
    costs = rd_costs(model, variables, img, 0.01, candidates)
    best = choose_placement(model, variables, img, 0.01)
    assert best == candidates[int(np.argmin(costs))]
    monkeypatch.setattr(placement, "rd_costs", lambda *a: np.ones(len(a[4])))
    assert choose_placement(model, variables, img, 0.01) == (8, 16)
    with pytest.raises(ValueError, match="λ must be positive"):
        choose_placement(model, variables, img, 0.0)


def test_the_chosen_placement_codes_and_decodes(small):
    model, variables, img = small
    best = choose_placement(model, variables, img, 0.01)
    encoded = encode(model, variables, img, placement=best)
    header, _ = container.unpack(encoded.blob)
    assert (header.pad_top, header.pad_left) == best
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_placement_is_searched_in_the_chosen_orientation(small, monkeypatch):
    model, variables, img = small
    orientation_costs = np.ones(8)
    orientation_costs[5] = 0.5  # an odd orientation: the coded image is 33 x 51
    monkeypatch.setattr(orientation, "rd_costs", lambda *a: orientation_costs)
    searched = []

    def fake_placement_costs(model, variables, turned, lmbda, places, coarseness):
        searched.append((turned.shape, lmbda, coarseness))
        return np.arange(len(places), 0, -1.0)  # the last candidate is the cheapest

    monkeypatch.setattr(placement, "rd_costs", fake_placement_costs)
    choose = choose_orientation_and_placement
    turned_candidates = candidate_placements(model, 33, 51)
    assert choose(model, variables, img, 0.01, 0.02) == (5, turned_candidates[-1])
    assert searched == [((33, 51, 3), 0.02, 0)]
    assert choose(model, variables, img, None, 0.02) == (
        0,
        candidate_placements(model, 51, 33)[-1],
    )
    assert choose(model, variables, img, 0.01, None) == (5, None)
    assert choose(model, variables, img) == (0, None)
    assert len(searched) == 2
    # the searches cost the image at the coarseness it will be coded with
    assert choose(model, variables, img, None, 0.02, coarseness=2)[0] == 0
    assert searched[-1] == ((51, 33, 3), 0.02, 2)
