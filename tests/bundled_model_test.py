"""The bundled default models: one RD curve, load, round-trip real photos, honest rates."""

import numpy as np
import pytest

import llic_jax
from configs.common import MSE_LMBDAS
from llic_jax.coding.codec import encode
from llic_jax.weights import BUNDLED, DEFAULT_QUALITY, bundled_path, read_metadata


@pytest.fixture(scope="module")
def bundled():
    return llic_jax.load_weights()


def test_the_bundled_models_are_one_curve_with_the_middle_one_as_default():
    qualities = sorted(BUNDLED)
    assert len(qualities) >= 2
    assert qualities[len(qualities) // 2] == DEFAULT_QUALITY
    assert sum(bundled_path(q).stat().st_size for q in qualities) <= 40e6
    for q in qualities:
        metadata = read_metadata(bundled_path(q))
        # The quality index means the same λ as in training (DESIGN.md §5).
        assert float(metadata["lmbda"]) == pytest.approx(MSE_LMBDAS[q])
        assert '"llic-elic-compact"' in metadata["model"]


def test_bundled_weights_load_with_tables(bundled):
    model, variables = bundled
    assert model.model_name == "llic-elic-compact"
    assert set(variables["tables"]) == {"y", "z"}


# Tiny sizes share one padded shape (one compilation); the BSDS photo is a real photo
# at full size, of a shape that is no multiple of anything.
@pytest.mark.parametrize("size", [(1, 1), (17, 31), (64, 64), "bsds"])
def test_round_trip_on_real_photos(bundled, photo, bsds_photo, size):
    model, variables = bundled
    crop = size != "bsds"  # else the whole 481 x 321 photo
    img = np.ascontiguousarray(photo[: size[0], : size[1]]) if crop else bsds_photo
    encoded = encode(model, variables, img)
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    forward, bits = llic_jax.reconstruct(model, variables, img)
    assert (np.abs(forward.astype(int) - decoded.astype(int)) <= 1).mean() >= 0.999
    if size == "bsds":
        # Real bits (container included) within 1% + 100 bytes of the estimate.
        assert 8 * len(encoded.blob) <= bits * 1.01 + 800


def test_the_cli_decodes_with_the_bundled_model_that_made_the_stream(
    tmp_path, photo, capsys
):
    from PIL import Image

    from llic_jax.cli import main
    from llic_jax.metrics import psnr

    crop = np.ascontiguousarray(photo[:40, :56])
    png, stream, out = tmp_path / "in.png", tmp_path / "s.llic", tmp_path / "out.png"
    Image.fromarray(crop).save(png)
    lowest = min(BUNDLED)
    assert lowest != DEFAULT_QUALITY
    assert main(["encode", str(png), str(stream), "--quality", str(lowest)]) == 0
    # No --weights: the header's fingerprint picks the model, not the default quality.
    assert main(["decode", str(stream), str(out)]) == 0
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == crop.shape and psnr(crop, decoded) > 20
    assert main(["encode", str(png), str(stream), "--quality", "9"]) == 1
    assert "no bundled model of quality 9" in capsys.readouterr().err


def test_quality_1_is_quality_2_coarser_and_costs_no_bundle_bytes(tmp_path, photo):
    from PIL import Image

    from llic_jax.cli import main
    from llic_jax.coding import container
    from llic_jax.weights import QUALITIES, bundled_coarseness

    assert QUALITIES == (1, 2, 3, 4)
    assert bundled_path(1) == bundled_path(2) and bundled_coarseness(1) == 3
    assert [bundled_coarseness(q) for q in (2, 3, 4)] == [0, 0, 0]
    # 64 x 64 is compiled for the round trips already
    png = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[96:160, 384:448])).save(png)
    sizes = {}
    for quality in (1, 2):
        stream = tmp_path / f"q{quality}.llic"
        assert main(["encode", str(png), str(stream), "--quality", str(quality),
                     "--no-wiener"]) == 0  # fmt: skip
        assert container.unpack(stream.read_bytes())[0].coarseness == (quality == 1) * 3
        assert main(["decode", str(stream), str(tmp_path / f"q{quality}.png")]) == 0
        sizes[quality] = stream.stat().st_size
    assert sizes[1] < sizes[2]
    # the RD searches of quality 1 weigh distortion at quality 2's λ over the step²
    from argparse import Namespace

    from llic_jax.cli import _refinement
    from llic_jax.entropy.coarseness import latent_step

    args = Namespace(refine=5, refine_lr=None, lmbda=None, coarser=None)
    lmbda = _refinement(args, None, 1, bundled_coarseness(1)).lmbda
    assert lmbda == pytest.approx(MSE_LMBDAS[2] / float(latent_step(3)) ** 2)
    assert lmbda == pytest.approx(MSE_LMBDAS[1], rel=0.08)  # quality 1's own λ


def test_bundled_post_filters_serve_bundled_models_within_the_size_budget():
    from llic_jax.post_filter_weights import ASSETS, BUNDLED_SUFFIX, bundled_post_filter
    from llic_jax.weights import read_safetensors_metadata

    filters = sorted(ASSETS.glob("*" + BUNDLED_SUFFIX))
    assert filters, "the default model ships with a post-filter"
    fingerprints = {read_metadata(bundled_path(q))["fingerprint"] for q in BUNDLED}
    for path in filters:
        served = read_safetensors_metadata(path)["codec_fingerprint"]
        assert served in fingerprints
        assert (
            bundled_post_filter(bytes.fromhex(served)).codec_fingerprint.hex() == served
        )
    models = sum(bundled_path(q).stat().st_size for q in BUNDLED)
    assert models + sum(path.stat().st_size for path in filters) <= 40e6


def test_the_default_models_post_filter_improves_a_photo_it_never_saw(bundled, photo):
    from llic_jax.coding import container
    from llic_jax.coding.codec import fingerprint
    from llic_jax.metrics import psnr
    from llic_jax.post_filter_weights import bundled_post_filter

    model, variables = bundled
    post_filter = bundled_post_filter(fingerprint(variables))
    # kodim23 (not in bsds300); 64 x 64 is compiled for the round trips already
    img = np.ascontiguousarray(photo[96:160, 384:448])
    plain = encode(model, variables, img)
    filtered = encode(model, variables, img, post_filter=post_filter)
    assert container.unpack(filtered.blob)[0].post_filtered == 1
    assert len(filtered.blob) == len(plain.blob)
    assert psnr(img, filtered.reconstruction) > psnr(img, plain.reconstruction) + 0.05
    decoded = llic_jax.decompress(
        model, variables, filtered.blob, post_filter=post_filter
    )
    np.testing.assert_array_equal(decoded, filtered.reconstruction)
