"""The post-filter in the codec: the encoder's choice, the header flag, the decoder."""

import dataclasses
import itertools

import jax
import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container
from llic_jax.coding.codec import encode, fingerprint
from llic_jax.coding.orientation import orient
from llic_jax.coding.placement import centred_placement
from llic_jax.layers.post_filter import PostFilter
from llic_jax.post_filter_weights import LoadedPostFilter


@dataclasses.dataclass(frozen=True)
class FixedOutput:
    """Stands in for a trained filter: returns fixed padded float images.

    `ensemble_output` is its self-ensemble's (`None`: the ensemble must not be asked for).
    """

    output: np.ndarray
    codec_fingerprint: bytes
    ensemble_output: np.ndarray | None = None

    def __call__(self, x_hat, ensemble=False):
        assert x_hat.shape == self.output.shape
        if ensemble:
            assert self.ensemble_output is not None, "the ensemble was not asked for"
            return self.ensemble_output
        return self.output


@pytest.fixture(scope="module")
def coded(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    img = np.ascontiguousarray(photo[100:117, 50:81])  # 17 x 31, padded to 64 x 64
    return model, variables, img


def _padded(img, model):
    """The canvas the codec codes: `img` at its default (centred) placement."""
    placement = centred_placement(model, *img.shape[:2])
    return np.asarray(llic_jax.coding.codec.pad_image(model, img, placement)[0])


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


@pytest.mark.parametrize("ensemble_wins", [False, True])
def test_the_encoder_keeps_the_ensemble_only_where_it_is_closer(coded, ensemble_wins):
    model, variables, img = coded
    exact = _padded(img, model)
    near = np.clip(exact + 3 / 255, 0, 1)  # better than the codec, worse than exact
    single, mean = (near, exact) if ensemble_wins else (exact, near)
    oracle = FixedOutput(single, fingerprint(variables), ensemble_output=mean)
    encoded = encode(model, variables, img, post_filter=oracle, post_filter_ensemble=True)
    header, _ = container.unpack(encoded.blob)
    assert header.post_filtered == 1 and encoded.post_filtered
    assert header.post_filter_ensemble == encoded.post_filter_ensemble == ensemble_wins
    np.testing.assert_array_equal(encoded.reconstruction, img)
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=oracle)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    # Without the option the ensemble is never computed (FixedOutput would fail).
    plain = encode(model, variables, img, post_filter=dataclasses.replace(
        oracle, ensemble_output=None))  # fmt: skip
    assert container.unpack(plain.blob)[0].post_filter_ensemble == 0


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_a_trained_filters_ensemble_decodes_to_the_encoders_reconstruction(
    coded, monkeypatch, gain
):
    model, variables, img = coded
    module = PostFilter(width=8, blocks=1)
    params = module.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))["params"]
    params = jax.tree.map(lambda p: p + 0.01, params)
    post_filter = LoadedPostFilter(module, params, fingerprint(variables), gain)
    x_hat = np.asarray(_padded(img, model), np.float32)
    single, mean = post_filter(x_hat), post_filter(x_hat, ensemble=True)
    assert float(np.abs(np.asarray(single) - np.asarray(mean)).max()) > 1e-4
    # An untrained filter rarely helps: make the comparisons (single pass against the
    # codec's image, then the ensemble against it) prefer the ensemble.
    preference = itertools.cycle([1, 0, 0, 1])
    monkeypatch.setattr(llic_jax.coding.codec, "_sse", lambda *_: next(preference))
    encoded = encode(model, variables, img, post_filter=post_filter,
                     post_filter_ensemble=True)  # fmt: skip
    assert container.unpack(encoded.blob)[0].post_filter_ensemble == 1
    decoded = llic_jax.decompress(model, variables, encoded.blob, post_filter=post_filter)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    single_pass = encode(model, variables, img, post_filter=post_filter)
    assert not np.array_equal(decoded, single_pass.reconstruction)
    if gain != 1.0:  # the decoder applies the file's gain: without it, another image
        plain = dataclasses.replace(post_filter, ensemble_gain=1.0)
        other = llic_jax.decompress(model, variables, encoded.blob, post_filter=plain)
        assert not np.array_equal(decoded, other)
