"""The per-image Wiener filter: its taps, its fit, its payload."""

import numpy as np
import pytest

from llic_jax.coding import wiener_filter
from llic_jax.coding.container import BitstreamError
from llic_jax.coding.wiener_filter import (
    WienerFilter,
    apply_wiener_filter,
    decode_wiener_filter,
    encode_wiener_filter,
    fit_wiener_filter,
    payload_bits,
    tap_count,
)


def _images(photo, size=48):
    """(original uint8, a blurred, scaled float copy, a noisier float copy)."""
    original = np.ascontiguousarray(photo[150 : 150 + size, 250 : 250 + size])
    x = original.astype(np.float32) / 255
    blurred = x
    for axis in (0, 1):  # a symmetric blur, which symmetric taps can partly undo
        blurred = (
            2 * blurred + np.roll(blurred, 1, axis) + np.roll(blurred, -1, axis)
        ) / 4
    rng = np.random.default_rng(0)
    synthesis = blurred + rng.normal(0, 0.02, x.shape).astype(np.float32)
    return original, 0.8 * blurred + 0.1, synthesis


def _random_filter(rng, radius, with_synthesis, step_log2=9, scale=40):
    shape = (3, tap_count(radius, with_synthesis))
    return WienerFilter(radius, with_synthesis, step_log2,
                        rng.integers(-scale, scale + 1, shape))  # fmt: skip


def test_tap_counts_follow_the_diamond():
    # gain, offset, 2 cross-channel taps, 3 synthesis taps, then r(r + 1) pairs
    assert [tap_count(r, False) for r in range(4)] == [4, 6, 10, 16]
    assert tap_count(5, True) == 4 + 3 + 30
    pairs = wiener_filter._offset_pairs(3)
    assert len(pairs) == len(set(pairs)) == 12
    assert all((-i, -j) not in pairs for i, j in pairs)  # one of each ± pair
    assert pairs[:2] == [(0, 1), (1, 0)]  # nearest first: smaller diamonds are prefixes


@pytest.mark.parametrize("radius, with_synthesis", [(0, False), (3, True), (7, True)])
@pytest.mark.parametrize("scale", [0, 5, 3000])
def test_payloads_round_trip(radius, with_synthesis, scale):
    rng = np.random.default_rng(radius + scale)
    wiener = _random_filter(rng, radius, with_synthesis, step_log2=11, scale=scale)
    payload = encode_wiener_filter(wiener)
    assert len(payload) == -(-payload_bits(wiener) // 8)
    back = decode_wiener_filter(payload)
    assert back.radius == radius and back.with_synthesis == with_synthesis
    assert back.step_log2 == 11
    np.testing.assert_array_equal(back.coefficients, wiener.coefficients)


def test_malformed_payloads_are_refused():
    wiener = _random_filter(np.random.default_rng(0), 2, True)
    payload = encode_wiener_filter(wiener)
    bad = {
        "too short": payload[:1],
        "truncated": payload[:-2],
        "left over": payload + b"\0",
        "order": payload[:1] + bytes([16]) + payload[2:],
        "long code": payload[:2] + b"\0" * 8,
    }
    for reason, blob in bad.items():
        with pytest.raises(BitstreamError, match=reason) as info:
            decode_wiener_filter(blob)
        assert "\n" not in str(info.value)


def test_the_zero_filter_changes_nothing(photo):
    _, filtered, synthesis = _images(photo)
    zero = WienerFilter(4, True, 9, np.zeros((3, tap_count(4, True)), np.int64))
    np.testing.assert_array_equal(
        apply_wiener_filter(zero, filtered, synthesis), filtered
    )


def test_taps_match_their_definition(photo):
    _, filtered, synthesis = _images(photo)
    radius, step = 2, 2.0**-9
    coefficients = np.zeros((3, tap_count(radius, True)), np.int64)
    # channel 1: gain, offset, the G-B cross tap, R's synthesis tap, the pair ±(1, 0)
    pair = 4 + 3 + wiener_filter._offset_pairs(radius).index((1, 0))
    coefficients[1, [0, 1, 3, 4, pair]] = [10, -7, 5, 3, 20]
    out = apply_wiener_filter(
        WienerFilter(radius, True, 9, coefficients), filtered, synthesis
    )
    f = filtered.astype(np.float64)
    vertical = np.roll(f[..., 1], -1, 0) + np.roll(f[..., 1], 1, 0) - 2 * f[..., 1]
    expected = (f[..., 1] * (1 + 10 * step) - 7 * step + 5 * step * (f[..., 2] - f[..., 1])
                + 3 * step * (synthesis[..., 0] - f[..., 0]) + 20 * step * vertical)  # fmt: skip
    inner = (slice(1, -1), slice(None))  # np.roll wraps, the filter replicates edges
    np.testing.assert_allclose(out[..., 1][inner], expected[inner], atol=1e-6)
    np.testing.assert_array_equal(out[..., 0], filtered[..., 0])


def test_bands_do_not_show(photo, monkeypatch):
    _, filtered, synthesis = _images(photo)
    wiener = _random_filter(np.random.default_rng(1), 5, True)
    whole = apply_wiener_filter(wiener, filtered, synthesis)
    monkeypatch.setattr(wiener_filter, "_BAND_ROWS", 7)
    np.testing.assert_array_equal(apply_wiener_filter(wiener, filtered, synthesis), whole)


def test_the_fit_does_not_depend_on_the_bands(photo, monkeypatch):
    original, filtered, synthesis = _images(photo, size=40)
    whole = fit_wiener_filter(original, filtered, synthesis, lmbda=0.01)
    monkeypatch.setattr(wiener_filter, "_BAND_ROWS", 7)  # 40 = 5 × 7 + 5: a short band
    banded = fit_wiener_filter(original, filtered, synthesis, lmbda=0.01)
    assert (banded.radius, banded.step_log2) == (whole.radius, whole.step_log2)
    np.testing.assert_array_equal(banded.coefficients, whole.coefficients)


def test_large_images_are_fitted_on_a_sample_of_bands(photo, monkeypatch):
    original, filtered, synthesis = _images(photo, size=40)
    whole = fit_wiener_filter(original, filtered, synthesis, lmbda=0.01)
    monkeypatch.setattr(wiener_filter, "_BAND_ROWS", 4)
    monkeypatch.setattr(wiener_filter, "_FIT_PIXELS", 40 * 40 // 3)  # 4 of 10 bands
    sampled = fit_wiener_filter(original, filtered, synthesis, lmbda=0.01)
    assert sampled is not None and sampled.radius > 0
    assert not np.array_equal(sampled.coefficients, whole.coefficients)

    # a sample of the same statistics: the taps it finds do nearly as well
    def mse(wiener):
        out = apply_wiener_filter(wiener, filtered, synthesis)
        return np.mean((np.clip(np.rint(out * 255), 0, 255) - original) ** 2)

    none = WienerFilter(0, True, 9, np.zeros((3, tap_count(0, True)), np.int64))
    assert mse(whole) < mse(sampled) < min(1.5 * mse(whole), 0.5 * mse(none))


@pytest.mark.parametrize("with_synthesis", [False, True])
def test_the_fit_undoes_a_linear_degradation(photo, with_synthesis):
    original, filtered, synthesis = _images(photo)
    synthesis = synthesis if with_synthesis else None
    wiener = fit_wiener_filter(original, filtered, synthesis, lmbda=0.01)
    assert wiener is not None and wiener.with_synthesis == with_synthesis
    out = apply_wiener_filter(wiener, filtered, synthesis)

    def mse(img):
        return np.mean((np.clip(np.rint(img * 255), 0, 255) - original) ** 2)

    assert mse(out) < 0.25 * mse(filtered)  # gain and offset alone give most of it


def test_the_fit_sends_nothing_when_nothing_pays(photo):
    original, filtered, synthesis = _images(photo)
    exact = original.astype(np.float32) / 255
    assert fit_wiener_filter(original, exact, None, lmbda=0.01) is None
    # The same degradation, but at a λ where ~100 bytes outweigh any distortion
    assert fit_wiener_filter(original, filtered, synthesis, lmbda=1e-9) is None


def test_the_fit_refuses_bad_arguments(photo):
    original, filtered, synthesis = _images(photo)
    with pytest.raises(ValueError, match="λ"):
        fit_wiener_filter(original, filtered, synthesis, lmbda=0.0)
    with pytest.raises(ValueError, match="shape"):
        fit_wiener_filter(original[:-1], filtered, synthesis, lmbda=0.01)
    with pytest.raises(ValueError, match="synthesis"):
        apply_wiener_filter(_random_filter(np.random.default_rng(0), 1, True), filtered)
