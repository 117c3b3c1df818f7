import io

import numpy as np
import pytest
from PIL import Image

from llic_jax.metrics import ms_ssim, ms_ssim_db, psnr


def _jpeg(img, quality):
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_psnr_of_a_known_error():
    x = np.zeros((4, 4, 3), np.uint8)
    y = x.copy()
    y[0, 0, 0] = 16  # MSE = 256 / 48
    assert psnr(x, y) == pytest.approx(10 * np.log10(255**2 * 48 / 256))
    assert psnr(x, x) == float("inf")


@pytest.mark.parametrize("size", [(500, 500), (171, 333)], ids=str)
def test_ms_ssim_matches_tensorflow_on_a_photo(photo, size):
    tf = pytest.importorskip(
        "tensorflow"
    )  # in requirements.txt; absent on bare GPU images
    x = np.ascontiguousarray(photo[: size[0], : size[1]])
    y = _jpeg(x, 15)
    expected = float(
        tf.image.ssim_multiscale(
            tf.constant(x, tf.float32), tf.constant(y, tf.float32), 255.0
        )
    )
    assert ms_ssim(x, y) == pytest.approx(expected, abs=1e-4)
    assert 0.8 < ms_ssim(x, y) < 1.0


def test_ms_ssim_orders_distortions_and_batches(photo):
    x = np.ascontiguousarray(photo[:256, :256])
    mild, strong = _jpeg(x, 60), _jpeg(x, 5)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(x, mild) > ms_ssim(x, strong)
    batch = ms_ssim(np.stack([x, x]), np.stack([mild, strong]))
    np.testing.assert_allclose(batch, [ms_ssim(x, mild), ms_ssim(x, strong)], rtol=1e-5)
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


def test_ms_ssim_refuses_small_or_mismatched_images(photo):
    with pytest.raises(ValueError, match="161"):
        ms_ssim(photo[:160, :200], photo[:160, :200])
    with pytest.raises(ValueError, match="shapes differ"):
        ms_ssim(photo[:200, :200], photo[:200, :201])
