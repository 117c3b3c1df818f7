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


def _filter_file(path, fingerprint: bytes, seed: int = 1):
    from llic_jax.layers.post_filter import PostFilter
    from llic_jax.post_filter_weights import save_post_filter

    module = PostFilter(width=8, blocks=1)
    params = module.init(jax.random.PRNGKey(seed), np.zeros((1, 8, 8, 3)))["params"]
    # A non-zero head, so that the filter is not the identity a fresh one would be.
    params = jax.tree.map(lambda p: p + 0.01, params)
    save_post_filter(path, module, params, fingerprint)
    return load_post_filter(path)


def test_init_starts_from_a_trained_filter_of_other_weights(
    tmp_path, photos, small_weights_file, capsys
):
    init = _filter_file(tmp_path / "init.safetensors", b"\x01" * 8)
    workdir = tmp_path / "wd"
    argv = ["--workdir", str(workdir), "--data", str(photos), "--weights",
            str(small_weights_file), "--steps", "3", "--warmup", "1", "--batch", "2",
            "--patch", "16", "--init", str(tmp_path / "init.safetensors")]  # fmt: skip
    assert post_filter.main([*argv, "--lr", "0"]) == 0
    assert "trained for other weights (0101010101010101)" in capsys.readouterr().out
    # With a zero learning rate the state is the init's parameters, unchanged.
    for x, y in zip(
        _leaves(_state(workdir)["params"]), _leaves(init.params), strict=True
    ):
        np.testing.assert_array_equal(x, y)
    settings = json.loads((workdir / "settings.json").read_text())
    assert settings["init"] == f"init.safetensors:{init.digest()}"
    assert (settings["width"], settings["blocks"]) == (8, 1)

    out = tmp_path / "out.safetensors"
    assert post_filter.main(["--workdir", str(workdir), "--export", str(out)]) == 0
    from llic_jax.weights import read_safetensors_metadata

    assert read_safetensors_metadata(out)["init"] == settings["init"]
    assert load_post_filter(out).codec_fingerprint != init.codec_fingerprint

    # Another init for the same workdir is another run.
    _filter_file(tmp_path / "init.safetensors", b"\x01" * 8, seed=2)
    assert post_filter.main([*argv, "--lr", "0"]) == 1
    assert "other settings (init)" in capsys.readouterr().err


def test_init_and_an_explicit_width_are_refused(tmp_path, photos, capsys):
    argv = ["--workdir", str(tmp_path), "--data", str(photos), "--init", "f.safetensors",
            "--width", "32"]  # fmt: skip
    with pytest.raises(SystemExit):
        post_filter.main(argv)
    assert "--init takes the filter's width" in capsys.readouterr().err


def test_an_init_that_is_not_a_filter_fails_cleanly(
    tmp_path, photos, small_weights_file, capsys
):
    argv = ["--workdir", str(tmp_path / "wd"), "--data", str(photos), "--weights",
            str(small_weights_file), "--init", str(small_weights_file)]  # fmt: skip
    assert post_filter.main(argv) == 1
    assert "not a post-filter file" in capsys.readouterr().err


def test_export_without_a_trained_filter_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert post_filter.main(["--workdir", str(tmp_path), "--export", str(out)]) == 1
    assert "no trained post-filter" in capsys.readouterr().err and not out.exists()


def test_photos_smaller_than_the_patch_are_an_error(
    tmp_path, photos, small_weights_file, capsys
):
    assert _run(tmp_path, photos, small_weights_file, "--patch", "64") == 1
    assert "no photo of at least 64²" in capsys.readouterr().err


def test_grown_filter_computes_what_the_trained_one_did(tmp_path):
    from llic_jax.layers.post_filter import PostFilter

    trained = _filter_file(tmp_path / "f.safetensors", b"\x01" * 8)
    grown = PostFilter(width=8, blocks=3)
    params = post_filter.grown_params(grown, trained.params, jax.random.PRNGKey(5))
    assert sorted(params) == ["block_0", "block_1", "block_2", "head", "stem"]
    x_hat = np.random.default_rng(0).random((1, 16, 12, 3), dtype=np.float32)
    before = PostFilter(width=8, blocks=1).apply({"params": trained.params}, x_hat)
    after = grown.apply({"params": params}, x_hat)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert np.abs(after - x_hat).max() > 1e-3  # not merely two identities
    # The new blocks' first convolutions are not zero, so they can learn.
    assert np.abs(params["block_1"]["conv_0"]["kernel"]).max() > 0


def test_grow_blocks_deepens_the_init_filter(
    tmp_path, photos, small_weights_file, capsys
):
    _filter_file(tmp_path / "init.safetensors", b"\x01" * 8)
    workdir = tmp_path / "wd"
    argv = ["--workdir", str(workdir), "--data", str(photos), "--weights",
            str(small_weights_file), "--steps", "2", "--warmup", "1", "--batch", "2",
            "--patch", "16", "--init", str(tmp_path / "init.safetensors")]  # fmt: skip
    assert post_filter.main([*argv, "--grow-blocks", "2"]) == 0
    settings = json.loads((workdir / "settings.json").read_text())
    assert (settings["width"], settings["blocks"]) == (8, 3)
    out = tmp_path / "out.safetensors"
    assert post_filter.main(["--workdir", str(workdir), "--export", str(out)]) == 0
    assert load_post_filter(out).module.blocks == 3
    # The same workdir without the growth is another run.
    assert post_filter.main(argv) == 1
    assert "other settings (blocks)" in capsys.readouterr().err


def test_grow_blocks_without_init_is_refused(tmp_path, photos, capsys):
    argv = ["--workdir", str(tmp_path), "--data", str(photos), "--grow-blocks", "2"]
    with pytest.raises(SystemExit):
        post_filter.main(argv)
    assert "--grow-blocks needs --init" in capsys.readouterr().err


def _trained_workdir(workdir, gain_in_photos: float):
    """A workdir as training leaves it, whose photos lie `gain_in_photos` along the
    ensemble's residual from their reconstructions (so the fitted gain is known)."""
    from llic_jax.layers.post_filter import PostFilter
    from llic_jax.post_filter_weights import LoadedPostFilter

    module = PostFilter(width=8, blocks=1)
    params = dict(module.init(jax.random.PRNGKey(0), np.zeros((1, 8, 8, 3)))["params"])
    head = params["head"]["kernel"]  # a small random head: residuals of ~0.05
    params["head"] = {"kernel": 0.05 * jax.random.normal(jax.random.PRNGKey(1), head.shape),
                      "bias": params["head"]["bias"]}  # fmt: skip
    workdir.mkdir()
    settings = {"codec_fingerprint": "01" * 8, "data": "photos", "steps": 6,
                "batch": 2, "patch": 16, "lr": 1e-3, "warmup": 2, "width": 8,
                "blocks": 1, "seed": 0}  # fmt: skip
    (workdir / "settings.json").write_text(json.dumps(settings))
    state = {"params": params, "step": 6}
    (workdir / "state.msgpack").write_bytes(serialization.msgpack_serialize(state))
    loaded = LoadedPostFilter(module, params, b"\x01" * 8)
    rng = np.random.default_rng(0)
    arrays = {}
    for i, (h, w) in enumerate(
        [(24, 33), (17, 16)]
    ):  # odd sizes are padded for the filter
        x_hat = rng.uniform(0.3, 0.7, (h, w, 3)).astype(np.float16)
        padded = np.pad(
            x_hat.astype(np.float32), ((0, h % 2), (0, w % 2), (0, 0)), "edge"
        )
        mean = np.asarray(loaded(padded[None], ensemble=True))[0, :h, :w]
        photo = x_hat + gain_in_photos * (mean - x_hat)
        arrays |= {f"x_{i}": np.rint(np.clip(photo, 0, 1) * 255).astype(np.uint8),
                   f"x_hat_{i}": x_hat}  # fmt: skip
    np.savez(workdir / "pairs_train.npz", key="k", count=2, **arrays)
    return loaded


def test_export_fits_the_ensemble_gain_on_the_training_reconstructions(tmp_path, capsys):
    workdir, out = tmp_path / "wd", tmp_path / "f.safetensors"
    _trained_workdir(workdir, 1.3)
    argv = ["--workdir", str(workdir), "--export", str(out), "--ensemble-gain", "fit"]
    assert post_filter.main(argv) == 0
    assert load_post_filter(out).ensemble_gain == pytest.approx(1.3, abs=0.011)
    printed = capsys.readouterr().out
    assert "ensemble gain 1.3" in printed and "fitted on 2 training photos" in printed


def test_fitted_gain_raises_the_psnr_it_reports(tmp_path):
    loaded = _trained_workdir(tmp_path / "wd", 1.2)
    pairs = post_filter.read_pairs(tmp_path / "wd" / "pairs_train.npz")
    gain, before, after = post_filter.fit_ensemble_gain(loaded, pairs)
    assert gain == pytest.approx(1.2, abs=0.011) and after > before


def test_export_takes_a_given_ensemble_gain(tmp_path):
    workdir, out = tmp_path / "wd", tmp_path / "f.safetensors"
    _trained_workdir(workdir, 1.0)
    (workdir / "pairs_train.npz").unlink()  # a given gain needs no reconstructions
    argv = ["--workdir", str(workdir), "--export", str(out), "--ensemble-gain", "1.1"]
    assert post_filter.main(argv) == 0
    assert load_post_filter(out).ensemble_gain == 1.1


def test_fitting_without_cached_reconstructions_fails_cleanly(tmp_path, capsys):
    workdir, out = tmp_path / "wd", tmp_path / "f.safetensors"
    _trained_workdir(workdir, 1.0)
    (workdir / "pairs_train.npz").unlink()
    argv = ["--workdir", str(workdir), "--export", str(out), "--ensemble-gain", "fit"]
    assert post_filter.main(argv) == 1
    assert "no cached training reconstructions" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [(["--ensemble-gain", "0"], "is not in"),
     (["--ensemble-gain", "two"], "neither 'fit' nor a number"),
     (["--ensemble-gain", "1.1", "--data", "photos"], "goes with --export")],
)  # fmt: skip
def test_unusable_ensemble_gains_are_refused(tmp_path, capsys, extra, message):
    argv = ["--workdir", str(tmp_path)]
    if "--data" not in extra:
        argv += ["--export", str(tmp_path / "f.safetensors")]
    with pytest.raises(SystemExit) as e:
        post_filter.main(argv + extra)
    assert e.value.code == 2 and message in capsys.readouterr().err
