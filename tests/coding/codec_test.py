import dataclasses
import time

import jax
import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container
from llic_jax.coding.codec import encode
from llic_jax.coding.phase_times import PhaseTimes

SIZES = [(1, 1), (17, 31), (64, 64), (500, 500)]


def _crop(photo, h, w):
    return np.ascontiguousarray(photo[100 : 100 + h, 50 : 50 + w]) if h < 500 else photo


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018-mean"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_round_trip_is_bit_exact_and_matches_the_eval_forward(
    name, size, photo, make_small_model, check_round_trip
):
    check_round_trip(*make_small_model(name), _crop(photo, *size))


def test_round_trip_on_a_bsds_photo(bsds_photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    encoded = encode(model, variables, bsds_photo)
    assert bsds_photo.shape == (321, 481, 3)
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_compression_is_deterministic(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo, 64, 64)
    assert llic_jax.compress(model, variables, img) == llic_jax.compress(
        model, variables, img
    )


def test_gray_is_replicated_and_rgba_refused(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    gray = _crop(photo, 32, 40)[..., 1]
    decoded = llic_jax.decompress(
        model, variables, llic_jax.compress(model, variables, gray)
    )
    assert decoded.shape == (32, 40, 3)
    rgba = np.concatenate([_crop(photo, 8, 8), np.full((8, 8, 1), 255, np.uint8)], -1)
    with pytest.raises(ValueError, match="RGBA"):
        llic_jax.compress(model, variables, rgba)
    with pytest.raises(ValueError, match="uint8"):
        llic_jax.compress(model, variables, _crop(photo, 8, 8).astype(np.float32))


def test_missing_tables_is_a_clear_error(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    with pytest.raises(ValueError, match="build_tables"):
        llic_jax.compress(model, {"params": variables["params"]}, _crop(photo, 8, 8))


def test_stream_from_other_weights_or_model_is_refused(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    # in the corner: version 1 (below) cannot store another placement
    blob = llic_jax.compress(model, variables, _crop(photo, 16, 16), placement=(0, 0))
    other = llic_jax.build_tables(model, llic_jax.init(model, jax.random.key(7)))
    with pytest.raises(llic_jax.BitstreamError, match="other weights"):
        llic_jax.decompress(model, other, blob)
    other_model, other_variables = make_small_model("bmshj2018-hyperprior")
    with pytest.raises(llic_jax.BitstreamError, match="other weights"):
        llic_jax.decompress(other_model, other_variables, blob)
    # Format version 1 also named the model; such streams still decode and say so.
    header, streams = container.unpack(blob)
    named = dataclasses.replace(header, model_name=model.model_name)
    blob_v1 = container.pack(named, streams, version=1)
    assert np.array_equal(
        llic_jax.decompress(model, variables, blob_v1),
        llic_jax.decompress(model, variables, blob),
    )
    with pytest.raises(llic_jax.BitstreamError, match="made by model"):
        llic_jax.decompress(other_model, other_variables, blob_v1)


def test_weights_changed_after_a_first_call_get_a_new_fingerprint(
    photo, make_small_model
):
    model, variables = make_small_model("mbt2018-mean")
    blob = llic_jax.compress(model, variables, _crop(photo, 16, 16))  # caches the digest
    params = jax.tree.map(lambda a: a, variables["params"])
    params["g_a"]["layers_0"]["bias"] = params["g_a"]["layers_0"]["bias"] + 1e-3
    changed = {**variables, "params": params}
    with pytest.raises(llic_jax.BitstreamError, match="other weights"):
        llic_jax.decompress(model, changed, blob)


def test_phase_times_split_the_call_into_network_and_coding(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo, 64, 64)
    encode(model, variables, img)  # compile outside the timed calls
    enc, dec = PhaseTimes(), PhaseTimes()
    start = time.perf_counter()
    blob = encode(model, variables, img, times=enc).blob
    enc_total = time.perf_counter() - start
    llic_jax.decompress(model, variables, blob, times=dec)
    for times in (enc, dec):
        assert set(times.seconds) == {"network", "coding"}
        assert all(s > 0 for s in times.seconds.values())
    assert sum(enc.seconds.values()) <= enc_total


@pytest.mark.parametrize("placement", [None, (0, 0), (13, 2), (0, 31)])
def test_placement_round_trip_is_bit_exact_and_recorded(
    placement, photo, make_small_model
):
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo, 51, 33)  # padded to 64 × 64: 13 rows and 31 columns to place
    encoded = encode(model, variables, img, placement=placement)
    header, _ = container.unpack(encoded.blob)
    assert (header.pad_top, header.pad_left) == (placement or (8, 16))
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    # the eval forward at the same placement shows the same image
    expected, _ = llic_jax.reconstruct(model, variables, img, placement=placement)
    np.testing.assert_array_equal(decoded, expected)


def test_placements_code_different_canvases(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = _crop(photo, 51, 33)
    corner, centred = (encode(model, variables, img, placement=p) for p in [(0, 0), None])
    assert corner.symbols[0].size == centred.symbols[0].size
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(corner.symbols, centred.symbols, strict=True)
    )


@pytest.mark.parametrize("placement", [(14, 0), (0, 32), (-1, 0)])
def test_placement_outside_the_padding_is_refused(placement, photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    with pytest.raises(ValueError, match="outside the padding"):
        encode(model, variables, _crop(photo, 51, 33), placement=placement)


@pytest.mark.parametrize("name", ["mbt2018-mean", "llic-elic", "llic-stf"])
def test_coarser_streams_decode_bit_exactly_and_cost_less(name, photo, make_small_model):
    model, variables = make_small_model(name)
    img = _crop(photo, 64, 64)
    own = encode(model, variables, img, estimate=True)
    coarser = encode(model, variables, img, estimate=True, coarseness=4)
    header = container.unpack(coarser.blob)[0]
    assert (coarser.blob[4], header.coarseness) == (3, 4)  # format version 3
    assert own.blob[4] == 2  # streams at the weights' own step are unchanged
    np.testing.assert_array_equal(
        llic_jax.decompress(model, variables, coarser.blob), coarser.reconstruction
    )
    assert coarser.estimated_bits < own.estimated_bits
    assert len(coarser.blob) < len(own.blob)
    # the eval forward quantises as the coder does
    forward, bits = llic_jax.reconstruct(model, variables, img, coarseness=4)
    assert bits == pytest.approx(coarser.estimated_bits, rel=1e-3)
    assert (np.abs(forward.astype(int) - coarser.reconstruction) <= 1).mean() >= 0.999
    with pytest.raises(ValueError, match="coarseness"):
        encode(model, variables, img, coarseness=16)
