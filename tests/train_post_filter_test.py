"""train/post_filter.py: crops, cached reconstructions, resuming, export."""

import json

import jax
import numpy as np
import pytest
from flax import serialization
from PIL import Image

from llic_jax.post_filter_weights import load_post_filter
from train import post_filter


def test_sample_batch_crops_matching_pieces_of_photo_and_reconstruction():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    x_hat = (x / 255.0).astype(np.float16)  # a perfect "reconstruction"
    hats, photos = post_filter.sample_batch(rng, [(x, x_hat)], 12, 4)
    assert hats.shape == photos.shape == (12, 4, 4, 3)
    np.testing.assert_allclose(hats, photos, atol=1e-3)  # the same window of both
    mirrored = 0
    for crop in np.rint(photos * 255).astype(np.uint8):
        windows = [x[t : t + 4, s : s + 4] for t in range(7) for s in range(11)]
        assert any(np.array_equal(w, crop) for w in windows) or any(
            np.array_equal(w[:, ::-1], crop) for w in windows
        )
        mirrored += not any(np.array_equal(w, crop) for w in windows)
    assert 0 < mirrored < 12


@pytest.fixture(scope="module")
def photos(tmp_path_factory, photo):
    folder = tmp_path_factory.mktemp("photos")
    for i, (top, left) in enumerate([(0, 0), (200, 300)]):
        Image.fromarray(photo[top : top + 40, left : left + 48]).save(folder / f"{i}.png")
    return folder


def _run(workdir, photos, weights, *extra):
    argv = ["--workdir", str(workdir), "--data", str(photos), "--val", str(photos),
            "--weights", str(weights), "--steps", "6", "--warmup", "2", "--batch", "2",
            "--patch", "16", "--width", "8", "--blocks", "1", "--save-every", "2",
            "--eval-every", "3", *extra]  # fmt: skip
    return post_filter.main(argv)


def _state(workdir):
    return serialization.msgpack_restore((workdir / "state.msgpack").read_bytes())


def test_an_interrupted_run_goes_on_to_the_same_filter(
    tmp_path, photos, small_weights_file
):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _run(straight, photos, small_weights_file) == 0
    # A budget that runs out after the first step, then the same command again.
    assert _run(resumed, photos, small_weights_file, "--budget-s", "1e-9") == 0
    assert int(_state(resumed)["step"]) == 1
    assert _run(resumed, photos, small_weights_file) == 0
    a, b = _state(straight), _state(resumed)
    assert int(a["step"]) == int(b["step"]) == 6
    for x, y in zip(_leaves(a["params"]), _leaves(b["params"]), strict=True):
        np.testing.assert_array_equal(x, y)
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "val_psnr" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(np.isfinite(r["val_psnr"]) and r["val_psnr_unfiltered"] > 5 for r in evals)
    assert (straight / "pairs_train.npz").exists() and (
        straight / "pairs_val.npz"
    ).exists()

    out = tmp_path / "filter.safetensors"
    assert post_filter.main(["--workdir", str(straight), "--export", str(out)]) == 0
    loaded = load_post_filter(out)
    assert (loaded.module.width, loaded.module.blocks) == (8, 1)
    from llic_jax.coding.codec import fingerprint as codec_fingerprint
    from llic_jax.weights import load_weights

    assert loaded.codec_fingerprint == codec_fingerprint(
        load_weights(small_weights_file)[1]
    )
    for x, y in zip(_leaves(loaded.params), _leaves(a["params"]), strict=True):
        np.testing.assert_array_equal(x, y)


def _leaves(tree):
    return jax.tree.leaves(tree)


def test_a_workdir_of_other_settings_is_refused(
    tmp_path, photos, small_weights_file, capsys
):
    assert _run(tmp_path, photos, small_weights_file, "--budget-s", "1e-9") == 0
    assert _run(tmp_path, photos, small_weights_file, "--lr", "1e-3") == 1
    assert "other settings (lr)" in capsys.readouterr().err


def test_export_without_a_trained_filter_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert post_filter.main(["--workdir", str(tmp_path), "--export", str(out)]) == 1
    assert "no trained post-filter" in capsys.readouterr().err and not out.exists()


def test_photos_smaller_than_the_patch_are_an_error(
    tmp_path, photos, small_weights_file, capsys
):
    assert _run(tmp_path, photos, small_weights_file, "--patch", "64") == 1
    assert "no photo of at least 64²" in capsys.readouterr().err
