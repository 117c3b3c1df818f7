"""A per-image Wiener filter: least-squares filter taps fitted by the encoder, sent in the stream.

The decoder's last step, after the synthesis and the post-filter: each output channel c
becomes ``F_c + Σ_i k_i · t_i`` where F is the post-filtered reconstruction and the taps
t_i are linear in the decoder's images (all computed on the coded crop, edges replicated):

- ``F_c`` (a gain) and 1 (an offset);
- ``F_a - F_c`` for the two other channels a (colour cross-talk);
- ``S_a - F_a`` for all three channels, where S is the synthesis before the post-filter
  (only when the post-filter ran: it lets the filter weigh what the post-filter changed);
- for each point-symmetric pair of offsets ±o in the diamond ``|i| + |j| <= radius``,
  ``F_c[p + o] + F_c[p - o] - 2 F_c[p]`` (a symmetric FIR filter with no DC gain; pairs
  ordered by distance, so a smaller diamond's taps are a prefix of a larger one's).

The encoder has the original, so it fits ``k`` by least squares (a Wiener filter, the idea
behind the adaptive loop filter of H.266/VVC: Karczewicz et al., "VVC in-loop filters",
IEEE TCSVT 2021, where it is fitted per picture and signalled too), quantises it with a
step of ``2**-step_log2`` and keeps it only where it pays in the RD cost
``bits / pixels + λ · MSE(0–255)``. With the bundled compact models it adds ~0.1 dB for
~100 bytes on a 500×500 Kodak crop (docs/results-history.md, session 29).

Payload (the container's third stream)::

    byte 0   bits 0-2 radius 0..7, bit 3 synthesis taps present,
             bits 4-7 step_log2 - 4 (step 2**-4 .. 2**-19)
    byte 1   bits 0-3 order k of the Exp-Golomb code, bits 4-7 zero
    then     3 × n signed Exp-Golomb-k codes (channels R, G, B, taps in the order
             above; v > 0 maps to 2v - 1, v <= 0 to -2v), most significant bit first,
             zero bits up to the next byte, nothing after them

Decoding is elementwise float64 arithmetic in a fixed order (no BLAS), so the encoder's
reconstruction and the decoder's agree to the bit wherever IEEE 754 does.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from llic_jax.coding.container import BitstreamError

__all__ = [
    "MAX_RADIUS",
    "WienerFilter",
    "apply_wiener_filter",
    "decode_wiener_filter",
    "encode_wiener_filter",
    "fit_wiener_filter",
    "tap_count",
]

MAX_RADIUS = 7
_MAX_COEFFICIENT = 1 << 20  # |k| / step; far above any fitted value
_MAX_ORDER = 15
_MAX_PREFIX = 24  # leading zeros of one Exp-Golomb code; more means a corrupt stream
_BAND_ROWS = (
    64  # rows per band: bounds the memory of fitting and applying (and is faster)
)
# The fit's statistics come from every band up to this many pixels, from evenly spaced
# bands beyond it (a 4K frame: one band in eight): ~60 unknowns per channel need far
# fewer, and the Gram matrix is most of the fit's time.
_FIT_PIXELS = 1 << 20
# Candidates the encoder tries (each is scored from one Gram matrix, see fit_wiener_filter).
_RADII = (1, 2, 3, 4, 5, 6, 7)
_STEPS_LOG2 = (8, 9, 10)


@dataclasses.dataclass(frozen=True)
class WienerFilter:
    """Quantised taps: ``coefficients[c, i] * 2**-step_log2`` weighs tap i of channel c."""

    radius: int
    with_synthesis: bool
    step_log2: int
    coefficients: np.ndarray  # int64 [3, tap_count(radius, with_synthesis)]

    def __post_init__(self):
        if not 0 <= self.radius <= MAX_RADIUS:
            raise ValueError(f"radius {self.radius} out of range 0..{MAX_RADIUS}")
        if not 4 <= self.step_log2 <= 19:
            raise ValueError(f"step_log2 {self.step_log2} out of range 4..19")
        shape = (3, tap_count(self.radius, self.with_synthesis))
        if np.shape(self.coefficients) != shape:
            raise ValueError(f"expected coefficients of shape {shape}")
        if np.any(np.abs(self.coefficients) > _MAX_COEFFICIENT):
            raise ValueError("coefficient out of range")


def _offset_pairs(radius: int) -> list[tuple[int, int]]:
    """One offset of each ±pair in the diamond |i| + |j| <= radius, nearest first."""
    offsets = [
        (i, j)
        for i in range(-radius, radius + 1)
        for j in range(-radius, radius + 1)
        if 0 < abs(i) + abs(j) <= radius and (i, j) > (0, 0)
    ]
    return sorted(offsets, key=lambda o: (abs(o[0]) + abs(o[1]), o))


def tap_count(radius: int, with_synthesis: bool) -> int:
    """Taps per channel: gain, offset, 2 cross-channel, 3 synthesis (if any), pairs."""
    return 4 + 3 * with_synthesis + radius * (radius + 1)


def _band_taps(filtered, synthesis, channel, radius, rows):
    """Yields the taps of `channel` for image rows `rows` (a slice), float64 [rows, W].

    `filtered` and `synthesis` are edge-padded by `radius` on every side (float64);
    `synthesis` is None without synthesis taps. Every tap but the first (a view of
    `filtered`) is a fresh array the caller may overwrite.
    """
    r = radius
    width = filtered.shape[1] - 2 * r
    body = (slice(rows.start + r, rows.stop + r), slice(r, r + width))

    def plane(img, c, di=0, dj=0):
        return img[rows.start + r + di : rows.stop + r + di, r + dj : r + dj + width, c]

    own = filtered[body][..., channel]
    yield own
    yield np.ones_like(own)
    for other in range(3):
        if other != channel:
            yield plane(filtered, other) - own
    if synthesis is not None:
        for c in range(3):
            yield plane(synthesis, c) - plane(filtered, c)
    twice = 2 * own
    for i, j in _offset_pairs(radius):
        pair = plane(filtered, channel, i, j) + plane(filtered, channel, -i, -j)
        pair -= twice  # in place: the same rounding as (a + b) - 2 * own, one array less
        yield pair


def _padded(img: np.ndarray | None, radius: int) -> np.ndarray | None:
    if img is None:
        return None
    # float32 in (what the decoder has), float64 out: exact, and no copies per tap
    img = np.asarray(img, np.float32).astype(np.float64)
    return np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="edge")


def _check_images(filtered, synthesis):
    if np.ndim(filtered) != 3 or np.shape(filtered)[-1] != 3:
        raise ValueError(f"expected a float image [H, W, 3], got {np.shape(filtered)}")
    if synthesis is not None and np.shape(synthesis) != np.shape(filtered):
        raise ValueError("synthesis and filtered image differ in shape")


def apply_wiener_filter(
    wiener: WienerFilter, filtered: np.ndarray, synthesis: np.ndarray | None = None
) -> np.ndarray:
    """The filtered image, float32 [H, W, 3] (not clipped); `synthesis` as `fit_…` had it.

    Raises:
        ValueError: `synthesis` is missing although the filter has synthesis taps, or
            given although it has none.
    """
    _check_images(filtered, synthesis)
    if (synthesis is not None) != wiener.with_synthesis:
        raise ValueError("the filter's synthesis taps and the images given disagree")
    height = filtered.shape[0]
    f_pad, s_pad = _padded(filtered, wiener.radius), _padded(synthesis, wiener.radius)
    weights = wiener.coefficients.astype(np.float64) * 2.0**-wiener.step_log2
    out = np.empty(np.shape(filtered), np.float32)
    for start in range(0, height, _BAND_ROWS):
        rows = slice(start, min(start + _BAND_ROWS, height))
        for c in range(3):
            taps = _band_taps(f_pad, s_pad, c, wiener.radius, rows)
            acc = next(taps) * (1.0 + weights[c, 0])
            for weight, tap in zip(weights[c, 1:], taps, strict=True):
                tap *= weight  # fresh arrays (the gain's, a view, was used above)
                acc += tap
            out[rows, :, c] = acc
    return out


def _exp_golomb_bits(values: np.ndarray, order: int) -> int:
    mapped = np.where(values > 0, 2 * values - 1, -2 * values) >> order
    return int(np.sum(2 * np.floor(np.log2(mapped + 1)).astype(np.int64) + 1 + order))


def payload_bits(wiener: WienerFilter) -> int:
    """Bits of `encode_wiener_filter(wiener)` before its final padding to whole bytes."""
    return 16 + _exp_golomb_bits(wiener.coefficients, _best_order(wiener.coefficients))


def _best_order(values: np.ndarray) -> int:
    return min(range(_MAX_ORDER + 1), key=lambda k: _exp_golomb_bits(values, k))


def encode_wiener_filter(wiener: WienerFilter) -> bytes:
    """The payload described in the module docstring."""
    order = _best_order(wiener.coefficients)
    bits = []
    for v in wiener.coefficients.ravel().tolist():
        u = (2 * v - 1 if v > 0 else -2 * v) + (1 << order)
        code = bin(u)[2:]
        bits.append("0" * (len(code) - 1 - order) + code)
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    head = bytes(
        [
            wiener.radius | wiener.with_synthesis << 3 | (wiener.step_log2 - 4) << 4,
            order,
        ]
    )
    body = int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""
    return head + body


def decode_wiener_filter(payload: bytes) -> WienerFilter:
    """Inverse of `encode_wiener_filter`.

    Raises:
        BitstreamError: the payload is truncated, malformed or has bytes left over.
    """
    if len(payload) < 2:
        raise BitstreamError("wiener filter payload too short")
    radius, with_synthesis = payload[0] & 7, bool(payload[0] & 8)
    step_log2, order = (payload[0] >> 4) + 4, payload[1]
    if order > _MAX_ORDER:
        raise BitstreamError("malformed wiener filter payload (exp-golomb order)")
    bits = "".join(f"{b:08b}" for b in payload[2:])
    at, values = 0, []
    for _ in range(3 * tap_count(radius, with_synthesis)):
        zeros = 0
        while at + zeros < len(bits) and bits[at + zeros] == "0":
            zeros += 1
            if zeros > _MAX_PREFIX:
                raise BitstreamError("malformed wiener filter payload (long code)")
        end = at + 2 * zeros + 1 + order
        if end > len(bits):
            raise BitstreamError("wiener filter payload truncated")
        u = int(bits[at + zeros : end], 2) - (1 << order)
        values.append((u + 1) // 2 if u % 2 else -(u // 2))
        at = end
    if len(bits) - at >= 8 or "1" in bits[at:]:
        raise BitstreamError("wiener filter payload has bytes left over")
    coefficients = np.array(values, np.int64).reshape(3, -1)
    if np.any(np.abs(coefficients) > _MAX_COEFFICIENT):
        raise BitstreamError("wiener filter coefficient out of range")
    return WienerFilter(radius, with_synthesis, step_log2, coefficients)


def fit_wiener_filter(
    image: np.ndarray,
    filtered: np.ndarray,
    synthesis: np.ndarray | None,
    lmbda: float,
    extra_bits: int = 0,
) -> WienerFilter | None:
    """The filter of lowest RD cost for `image` (uint8 [H, W, 3]), or None if none pays.

    `filtered`: the decoder's float reconstruction of the same crop; `synthesis`: the
    image before the post-filter, or None if the decoder does not post-filter. The cost
    of a filter is ``(payload bits + extra_bits) / pixels + lmbda · ΔMSE(0–255)`` against
    sending none; ΔMSE is the float one, from the normal equations (the 8-bit rounding is
    the caller's to check). Tried: every radius in `_RADII` (1 … 7) and coefficient step
    2**-8, 2**-9, 2**-10; each from one Gram matrix of the largest set of taps (over
    evenly spaced row bands of about a megapixel in all on larger images).
    """
    _check_images(filtered, synthesis)
    if np.shape(image) != np.shape(filtered):
        raise ValueError("image and reconstruction differ in shape")
    if not (math.isfinite(lmbda) and lmbda > 0):
        raise ValueError(f"λ must be positive, got {lmbda}")
    height, width = image.shape[:2]
    radius = max(_RADII)
    f_pad, s_pad = _padded(filtered, radius), _padded(synthesis, radius)
    with_synthesis = synthesis is not None
    n = tap_count(radius, with_synthesis)
    grams = np.zeros((3, n, n))
    cross = np.zeros((3, n))
    band = np.empty((n, min(_BAND_ROWS, height), width))  # one buffer for every band
    stride = -(-height * width // _FIT_PIXELS)  # every band below _FIT_PIXELS
    sampled = 0
    for start in range(0, height, _BAND_ROWS * stride):
        rows = slice(start, min(start + _BAND_ROWS, height))
        for c in range(3):
            for i, tap in enumerate(_band_taps(f_pad, s_pad, c, radius, rows)):
                band[i, : rows.stop - start] = tap
            taps = band[:, : rows.stop - start].reshape(n, -1)  # a view
            target = image[rows, :, c].astype(np.float64).ravel() / 255.0
            grams[c] += taps @ taps.T
            cross[c] += taps @ (target - taps[0])
        sampled += (rows.stop - start) * width
    pixels = height * width
    best, best_cost = None, 0.0
    for r in _RADII:
        m = tap_count(r, with_synthesis)
        gram, rhs = grams[:, :m, :m], cross[:, :m]
        solution = np.stack(
            [np.linalg.lstsq(g, b, rcond=None)[0] for g, b in zip(gram, rhs, strict=True)]
        )
        for step_log2 in _STEPS_LOG2:
            q = np.clip(np.rint(solution * 2.0**step_log2), -_MAX_COEFFICIENT,
                        _MAX_COEFFICIENT).astype(np.int64)  # fmt: skip
            k = q * 2.0**-step_log2
            # Change of the summed squared error: kᵀGk − 2kᵀb per channel.
            delta_sse = float(np.sum(np.einsum("ci,cij,cj->c", k, gram, k))
                              - 2 * np.sum(k * rhs)) * pixels / sampled  # fmt: skip
            wiener = WienerFilter(r, with_synthesis, step_log2, q)
            cost = (payload_bits(wiener) + extra_bits) / pixels + lmbda * delta_sse * (
                255.0**2
            ) / (3 * pixels)
            if cost < best_cost:
                best, best_cost = wiener, cost
    return best
