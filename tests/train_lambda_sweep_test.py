"""train/lambda_sweep.py: crops, schedule, the vmapped step against one model, files."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import llic_jax
from llic_jax.export import load_workdir
from train import lambda_sweep


def test_stack_images_turns_landscape_and_crops_to_the_smallest():
    portrait = np.zeros((9, 6, 3), np.uint8)
    landscape = np.ones((5, 8, 3), np.uint8)
    stacked = lambda_sweep.stack_images([portrait, landscape])
    assert stacked.shape == (2, 5, 8, 3)
    assert stacked[0].max() == 0 and stacked[1].min() == 1


def test_sample_crops_are_pieces_of_the_images_under_a_symmetry():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 12, 20, 3), dtype=np.uint8)
    crops = np.asarray(
        lambda_sweep.sample_crops(jnp.asarray(images), jax.random.key(1), 16, 8)
    )
    assert crops.shape == (16, 8, 8, 3) and crops.dtype == np.float32
    assert crops.min() >= 0 and crops.max() <= 1
    for crop in np.round(crops * 255).astype(np.uint8):
        # Undo each of the 8 symmetries and look for the crop in every image.
        candidates = [crop, crop.transpose(1, 0, 2)]
        candidates = [
            c for d in candidates for c in (d, d[::-1], d[:, ::-1], d[::-1, ::-1])
        ]
        found = any(
            np.array_equal(img[t : t + 8, s : s + 8], c)
            for img in images
            for t in range(12 - 7)
            for s in range(20 - 7)
            for c in candidates
        )
        assert found


def test_learning_rate_warms_up_holds_then_decays_to_a_thirtieth():
    lr = lambda s: float(lambda_sweep.learning_rate(s, 1000, 3e-4, 100, 0.25))  # noqa: E731
    assert lr(0) == pytest.approx(3e-6)
    assert lr(99) == pytest.approx(3e-4)
    assert lr(500) == pytest.approx(3e-4)
    assert lr(750) == pytest.approx(3e-4)
    assert 1e-5 < lr(875) < 3e-4
    assert lr(1000) == pytest.approx(1e-5)


@pytest.fixture(scope="module")
def tiny():
    model = llic_jax.create_model("bmshj2018-hyperprior", N=8, M=8)
    keys = jax.random.split(jax.random.key(0), 2)
    params = jax.vmap(lambda k: llic_jax.init(model, k, (64, 64))["params"])(keys)
    images = jnp.asarray(
        np.random.default_rng(0).integers(0, 256, (4, 72, 80, 3), np.uint8)
    )
    return model, params, images


def test_each_model_of_the_sweep_trains_as_it_would_alone(tiny):
    model, params, images = tiny
    lmbdas = jnp.asarray([0.003, 0.05])
    adam = optax.scale_by_adam()
    state = (params, lambda_sweep.init_adam(params))
    step = lambda_sweep.make_sweep_step(model, clip=1.0, batch=2, patch=64)
    key = jax.random.key(3)
    new_state, metrics = step(jax.tree.map(jnp.copy, state), images, key, lmbdas, 1e-3)
    assert metrics["loss"].shape == (2,) and bool(jnp.all(metrics["finite"]))

    # Model 1 alone: same crops and noise (the step splits its key per model), same update.
    crop_key, noise_key = jax.random.split(jax.random.split(key, 2)[1])
    x = lambda_sweep.sample_crops(images, crop_key, 2, 64)
    one = jax.tree.map(lambda p: p[1], params)

    def loss_fn(p):
        x_hat, bits = model.apply({"params": p}, x, rngs={"noise": noise_key})
        return llic_jax.losses.rate_distortion_loss(x, x_hat, bits, 0.05)[0]

    grads = jax.grad(loss_fn)(one)
    grads = optax.clip_by_global_norm(1.0).update(grads, None)[0]
    updates, _ = adam.update(grads, adam.init(one), one)
    expected = jax.tree.map(lambda p, u: p - 1e-3 * u, one, updates)
    got = jax.tree.map(lambda p: p[1], new_state[0])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    # The two λ pulled the two models apart.
    assert not np.allclose(*(jax.tree.leaves(new_state[0])[0]))


def test_saved_parameters_become_an_exportable_workdir(tiny, tmp_path):
    model, params, _ = tiny
    lambda_sweep.save_params(tmp_path, model, [0.003, 0.05], params, [5, 7], "float16")
    saved = lambda_sweep.load_params(tmp_path / "params_0.05.msgpack")
    assert saved["step"] == 7 and saved["lmbda"] == 0.05
    first = jax.tree.leaves(saved["params"])[0]
    assert first.dtype == np.float32
    np.testing.assert_allclose(first, jax.tree.leaves(params)[0][1], rtol=1e-3, atol=1e-4)
    with pytest.raises(SystemExit, match="no such file"):
        lambda_sweep.load_params(tmp_path / "params_9.msgpack")

    lambda_sweep.to_workdir(
        tmp_path / "params_0.05.msgpack", tmp_path / "run", "none", ""
    )
    exported, exported_params, metadata = load_workdir(tmp_path / "run")
    assert exported == model and float(metadata["lmbda"]) == 0.05
    np.testing.assert_array_equal(jax.tree.leaves(exported_params)[0], first)
    # ... and the workdir can seed a new sweep (--init).
    seeded_model, seeded, steps = lambda_sweep.initial_params(tmp_path / "run")
    assert seeded_model == model and steps == 7
    np.testing.assert_array_equal(jax.tree.leaves(seeded)[0], first)


def test_a_sweep_from_workdirs_counts_their_steps_on_top_and_keeps_the_budget(
    tiny, tmp_path, capsys
):
    from PIL import Image

    model, params, images = tiny
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(np.asarray(images[:2])):
        Image.fromarray(img).save(folder / f"{i}.png")
    lambda_sweep.save_params(tmp_path, model, [0.003, 0.05], params, [3, 7], "float32")
    for lmbda in ("0.003", "0.05"):
        lambda_sweep.to_workdir(
            tmp_path / f"params_{lmbda}.msgpack", tmp_path / f"wd{lmbda}", "x", ""
        )
    common = ["--data", str(folder), "--batch", "2", "--patch", "64", "--downscale",
              "1", "--report-every", "5", "--out", str(tmp_path / "run")]  # fmt: skip
    with pytest.raises(SystemExit):  # three sources for two λ
        lambda_sweep.main(common + ["--lmbdas", "0.003", "0.05", "--init",
                                    *[str(tmp_path / "wd0.05")] * 3])  # fmt: skip
    # One source per λ, and a zero budget: the step count fixed after the timed first
    # 21 steps is 21.
    lambda_sweep.main(common + ["--lmbdas", "0.003", "0.05", "--budget-s", "0",
                                "--init", str(tmp_path / "wd0.003"),
                                str(tmp_path / "wd0.05")])  # fmt: skip
    run = tmp_path / "run"
    saved = {lm: lambda_sweep.load_params(run / f"params_{lm}.msgpack")
             for lm in ("0.003", "0.05")}  # fmt: skip
    assert saved["0.003"]["step"] == 3 + 21 and saved["0.05"]["step"] == 7 + 21
    log = (run / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [5, 10, 15, 20, 21]
    for lm in ("0.003", "0.05"):
        before = jax.tree.leaves(
            lambda_sweep.load_params(tmp_path / f"params_{lm}.msgpack")
        )
        assert any(
            not np.allclose(a, b)
            for a, b in zip(before, jax.tree.leaves(saved[lm]["params"]), strict=True)
        )
    assert "ms/step → 21 steps" in capsys.readouterr().out
