"""The per-image Wiener filter in the codec: the encoder's choice, the stream, the decoder."""

import dataclasses

import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container
from llic_jax.coding.codec import encode, fingerprint, pad_image
from llic_jax.coding.orientation import orient
from llic_jax.coding.placement import centred_placement


@dataclasses.dataclass(frozen=True)
class Degrading:
    """Stands in for a post-filter: returns a fixed, linearly degraded padded image."""

    output: np.ndarray
    codec_fingerprint: bytes

    def __call__(self, x_hat, ensemble=False):
        return self.output


@pytest.fixture(scope="module")
def coded(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = np.ascontiguousarray(photo[150:187, 250:281])  # 37 x 31, padded to 64 x 64
    return model, variables, img


def _mse(a, b):
    return np.mean((a.astype(float) - b) ** 2)


def _degrading_filter(model, variables, img, k=0):
    turned = orient(img, k)
    placement = centred_placement(model, *turned.shape[:2])  # the codec's canvas
    exact = np.asarray(pad_image(model, turned, placement)[0])
    # Closer to the image than the small model's own reconstruction (so the encoder
    # post-filters), yet off by a gain and an offset the Wiener filter can undo.
    return Degrading(0.9 * exact + 0.04, fingerprint(variables))


@pytest.mark.parametrize("k", [0, 5])
def test_a_wiener_filter_that_pays_is_sent_and_applied(coded, k):
    model, variables, img = coded
    post_filter = _degrading_filter(model, variables, img, k)
    without = encode(model, variables, img, orientation=k, post_filter=post_filter,
                     estimate=True)  # fmt: skip
    encoded = encode(model, variables, img, orientation=k, post_filter=post_filter,
                     estimate=True, wiener_lmbda=1.0)  # fmt: skip
    header, streams = container.unpack(encoded.blob)
    assert header.wiener_filtered == 1 and header.post_filtered == 1
    assert len(streams) == 3 and len(streams[2]) == encoded.wiener_bytes > 0
    assert _mse(img, encoded.reconstruction) < _mse(img, without.reconstruction) / 2
    for a, b in zip(encoded.symbols, without.symbols, strict=True):
        np.testing.assert_array_equal(a, b)  # the latents do not change
    assert encoded.estimated_bits == pytest.approx(
        without.estimated_bits + 8 * encoded.wiener_bytes
    )
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=post_filter)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_without_a_post_filter_it_filters_the_synthesis(coded):
    model, variables, img = coded
    encoded = encode(model, variables, img, wiener_lmbda=10.0)
    header, _ = container.unpack(encoded.blob)
    assert header.wiener_filtered == 1 and header.post_filtered == 0
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    assert _mse(img, decoded) < _mse(img, encode(model, variables, img).reconstruction)


def test_a_wiener_filter_that_does_not_pay_is_left_out(coded):
    model, variables, img = coded
    post_filter = _degrading_filter(model, variables, img)
    encoded = encode(model, variables, img, post_filter=post_filter, wiener_lmbda=1e-6)
    assert encoded.wiener_bytes == 0
    assert encoded.blob == encode(model, variables, img, post_filter=post_filter).blob


def test_the_decoder_refuses_inconsistent_wiener_streams(coded):
    model, variables, img = coded
    post_filter = _degrading_filter(model, variables, img)
    encoded = encode(model, variables, img, post_filter=post_filter, wiener_lmbda=1.0)
    header, streams = container.unpack(encoded.blob)

    def decode(header, streams):
        blob = container.pack(dataclasses.replace(header, stream_lengths=()), streams)
        return llic_jax.decompress(model, variables, blob, post_filter=post_filter)

    with pytest.raises(llic_jax.BitstreamError, match="expected 3 streams"):
        decode(header, streams[:2])
    with pytest.raises(llic_jax.BitstreamError, match="expected 2 streams"):
        decode(dataclasses.replace(header, wiener_filtered=0), streams)
    with pytest.raises(llic_jax.BitstreamError, match="post-filter flag"):
        decode(dataclasses.replace(header, post_filtered=0), streams)
    with pytest.raises(llic_jax.BitstreamError, match="wiener filter payload"):
        decode(header, [*streams[:2], streams[2][:-3]])
