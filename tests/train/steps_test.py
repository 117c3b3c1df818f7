"""Loss terms of the train step (MSE and MS-SSIM), schedules and their errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.losses import rate_distortion_loss, rate_distortion_terms
from llic_jax.metrics import ms_ssim
from train import steps


def _batch(size: int):
    rng = np.random.default_rng(0)
    x = rng.random((2, size, size, 3), dtype=np.float32)
    x_hat = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    bits = {"y": np.array([900.0, 1200.0], np.float32), "z": np.array([40.0, 60.0])}
    return x, x_hat, bits


def test_mse_terms_are_per_example_and_average_to_the_batch_loss():
    x, x_hat, bits = _batch(16)
    terms = rate_distortion_terms(x, x_hat, bits, 0.01)
    assert all(v.shape == (2,) for v in terms.values())
    mse = np.mean((255 * (x - x_hat)) ** 2, axis=(1, 2, 3))
    bpp = (bits["y"] + bits["z"]) / 256
    np.testing.assert_allclose(terms["loss"], bpp + 0.01 * mse, rtol=1e-5)
    np.testing.assert_allclose(terms["psnr"], 10 * np.log10(255**2 / mse), rtol=1e-5)
    loss, means = rate_distortion_loss(x, x_hat, bits, 0.01)
    np.testing.assert_allclose(loss, terms["loss"].mean(), rtol=1e-6)
    assert set(means) == {"loss", "bpp", "mse"}


def test_ms_ssim_terms_match_the_metric_and_have_finite_gradients():
    x, x_hat, bits = _batch(176)
    terms = rate_distortion_terms(x, x_hat, bits, 8.73, "ms-ssim")
    expected = ms_ssim(255 * x, 255 * x_hat)
    np.testing.assert_allclose(terms["ms_ssim"], expected, rtol=1e-5)
    bpp = (bits["y"] + bits["z"]) / 176**2
    np.testing.assert_allclose(terms["loss"], bpp + 8.73 * (1 - expected), rtol=1e-5)
    grad = jax.grad(
        lambda y: jnp.mean(rate_distortion_terms(x, y, bits, 8.73, "ms-ssim")["loss"])
    )(jnp.asarray(x_hat))
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    with pytest.raises(ValueError, match="metric"):
        rate_distortion_terms(x, x_hat, bits, 1.0, "ssim")


def test_schedules_and_their_errors():
    lr = steps.learning_rate_schedule((1.0, 0.5, 0.25), (0.5, 0.75), 100)
    assert [lr(s) for s in (0, 49, 50, 74, 75, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert steps.patch_size_at(10, (64,), (), 100) == 64
    with pytest.raises(ValueError, match="one more entry"):
        steps.learning_rate_schedule((1.0,), (0.5,), 100)
    with pytest.raises(ValueError, match="increasing"):
        steps.patch_size_at(0, (64, 128, 256), (0.8, 0.2), 100)
