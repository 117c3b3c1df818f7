"""The post-filter in the codec: the encoder's choice, the header flag, the decoder."""

import dataclasses

import jax
import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container
from llic_jax.coding.codec import encode, fingerprint
from llic_jax.coding.orientation import orient
from llic_jax.layers.post_filter import PostFilter
from llic_jax.post_filter_weights import LoadedPostFilter


@dataclasses.dataclass(frozen=True)
class FixedOutput:
    """Stands in for a trained filter: returns a fixed padded float image."""

    output: np.ndarray
    codec_fingerprint: bytes

    def __call__(self, x_hat):
        assert x_hat.shape == self.output.shape
        return self.output


@pytest.fixture(scope="module")
def coded(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = np.ascontiguousarray(photo[100:117, 50:81])  # 17 x 31, padded to 64 x 64
    return model, variables, img


def _padded(img, model):
    return np.asarray(llic_jax.coding.codec.pad_image(model, img)[0])


@pytest.mark.parametrize("k", [0, 5])
def test_a_filter_that_helps_is_flagged_and_applied_by_the_decoder(coded, k):
    model, variables, img = coded
    oracle = FixedOutput(_padded(orient(img, k), model), fingerprint(variables))
    encoded = encode(model, variables, img, orientation=k, post_filter=oracle)
    plain = encode(model, variables, img, orientation=k)
    header, _ = container.unpack(encoded.blob)
    assert header.post_filtered == 1 and header.orientation == k
    np.testing.assert_array_equal(encoded.reconstruction, img)  # what the oracle gave
    for a, b in zip(encoded.symbols, plain.symbols, strict=True):
        np.testing.assert_array_equal(a, b)  # the same symbols, so the same rate
    assert len(encoded.blob) == len(plain.blob)
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=oracle)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    with pytest.raises(llic_jax.BitstreamError, match="needs the post-filter"):
        llic_jax.decompress(model, variables, encoded.blob)
    other = dataclasses.replace(oracle, codec_fingerprint=b"\0" * 8)
    with pytest.raises(llic_jax.BitstreamError, match="other weights"):
        llic_jax.decompress(model, variables, encoded.blob, post_filter=other)


def test_a_filter_that_hurts_is_left_out(coded):
    model, variables, img = coded
    black = FixedOutput(np.zeros_like(_padded(img, model)), fingerprint(variables))
    encoded = encode(model, variables, img, post_filter=black)
    assert container.unpack(encoded.blob)[0].post_filtered == 0
    assert encoded.blob == encode(model, variables, img).blob
    # Such a stream decodes without any filter, and a given one is not applied.
    for post_filter in (None, black):
        decoded = llic_jax.decompress(
            model, variables, encoded.blob, post_filter=post_filter
        )
        np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_a_trained_filter_decodes_to_the_encoders_reconstruction(coded):
    model, variables, img = coded
    module = PostFilter(width=8, blocks=1)
    params = module.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))["params"]
    params = jax.tree.map(lambda p: p + 0.01, params)  # not the identity
    post_filter = LoadedPostFilter(module, params, fingerprint(variables))
    encoded = encode(model, variables, img, post_filter=post_filter)
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=post_filter)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)


def test_a_filter_of_other_weights_is_refused_by_the_encoder(coded):
    model, variables, img = coded
    stranger = FixedOutput(np.zeros((1, 64, 64, 3), np.float32), b"\1" * 8)
    with pytest.raises(ValueError, match="other weights"):
        encode(model, variables, img, post_filter=stranger)
