"""train.main / train_lib end to end on a tiny model: resume after SIGKILL, SIGTERM,
NaN guard, TensorBoard scalars, `llic export --workdir`, config errors.

Runs use 8 simulated CPU devices (tests/conftest.py), the quicktest config of
mbt2018-mean (64² crops, batch 8) with its sibling bmshj2018-hyperprior (N=16, M=24:
the fewest operations to compile; sharding_test.py's init of it is reused) and a
constant learning rate, so a run's length does not change its schedule.
"""

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import llic_jax
from configs import mbt2018_mean
from llic_jax import checkpoints
from llic_jax.cli import main as llic_main
from llic_jax.weights import read_metadata
from train import train_lib

ROOT = Path(__file__).resolve().parents[2]
STEPS = 12  # the reference run's length; checkpoints every 4
MODEL = "bmshj2018-hyperprior"


def _photo(rng, h: int, w: int) -> np.ndarray:
    """A smooth gradient with noise: something a codec can learn a little of."""
    ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    ramp[..., 1] = np.linspace(255, 0, h)[:, None]
    return np.clip(ramp + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for name, sizes in {"train": [(70, 90), (96, 80), (120, 100), (66, 70)],
                        "eval": [(168, 168), (168, 168)]}.items():  # fmt: skip
        folder = tmp_path_factory.mktemp(name)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(_photo(rng, h, w)).save(folder / f"{i}.png")
        out[name] = folder
    return out


def _config(folders, **changes):
    config = mbt2018_mean.get_config("quicktest=True")
    config.model_name = MODEL
    config.input.folder = str(folders["train"])
    config.total_steps = STEPS
    config.checkpoint_every = 4
    config.log_every = 2
    config.lr_values, config.lr_boundaries = (1e-3,), ()
    for key, value in changes.items():
        target = config
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return config


def _run(config, workdir) -> tuple[dict, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train_lib.train_and_evaluate(config, workdir)
    return result, out.getvalue()


def _latest_params(workdir: Path) -> tuple[list, int]:
    model = llic_jax.create_model(MODEL, N=16, M=24)
    shapes = jax.eval_shape(lambda k: llic_jax.init(model, k), jax.random.key(0))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    reader = checkpoints.Checkpointer(workdir / "checkpoints", read_only=True)
    params, step = reader.restore_params(
        checkpoints.abstract_tree(shapes["params"], device)
    )
    return [np.asarray(p) for p in jax.tree.leaves(params)], step


@pytest.fixture(scope="module")
def killed_run(folders, tmp_path_factory):
    """A long train.main run in a subprocess, SIGKILLed as soon as its first checkpoint
    is complete: (workdir, process, watcher thread, log file).

    The watcher thread kills it, so it runs while the reference run does.
    """
    workdir = tmp_path_factory.mktemp("killed") / "run"
    log = workdir.parent / "log.txt"
    command = [sys.executable, "-m", "train.main",
               "--config", f"{ROOT}/configs/mbt2018_mean.py:quicktest=True",
               "--workdir", str(workdir), f"--config.input.folder={folders['train']}",
               f"--config.model_name={MODEL}", "--config.total_steps=1000",
               "--config.checkpoint_every=4",
               "--config.lr_values=(0.001,)", "--config.lr_boundaries=()"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def kill_after_the_first_checkpoint():
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            if (workdir / "checkpoints" / "4").is_dir():
                break
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    watcher = threading.Thread(target=kill_after_the_first_checkpoint, daemon=True)
    watcher.start()
    yield workdir, proc, watcher, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def reference(folders, killed_run, tmp_path_factory):
    """An uninterrupted run with evaluation: (workdir, result, stdout).

    Depends on `killed_run` only to start that subprocess first, so the two overlap.
    """
    workdir = tmp_path_factory.mktemp("reference")
    config = _config(folders, **{"eval.folder": str(folders["eval"]), "eval.every": 6,
                                 "eval.real_bpp_every": STEPS})  # fmt: skip
    result, printed = _run(config, workdir)
    return workdir, result, printed


def test_run_logs_evaluates_and_saves(reference):
    workdir, result, printed = reference
    assert result["status"] == "done" and result["step"] == STEPS
    assert f"step {STEPS}/{STEPS}: loss" in printed and "img/s" in printed
    assert "eval @ 6:" in printed and "real" in printed.split(f"eval @ {STEPS}:")[1]
    assert checkpoints.Checkpointer(
        workdir / "checkpoints", read_only=True
    ).all_steps() == [
        8,
        12,
    ]  # the last two kept (quicktest: keep_checkpoints = 2)
    assert np.isfinite(result["metrics"]["loss"])


def test_tensorboard_has_the_scalars(reference):
    tf = pytest.importorskip("tensorflow")
    workdir = reference[0]
    tags = set()
    for path in (workdir / "tensorboard").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    train = ["loss", "bpp", "mse", "psnr", "lmbda", "lr", "grad_norm", "patch_size",
             "steps_per_sec", "images_per_sec", "nonfinite_steps"]  # fmt: skip
    evals = ["bpp_estimated", "psnr", "ms_ssim", "bpp_real", "psnr_real"]
    expected = {f"train/{t}" for t in train} | {f"eval/{t}" for t in evals}
    assert expected <= tags, expected - tags


def test_sigkill_then_restart_ends_as_an_uninterrupted_run(
    folders, killed_run, reference
):
    workdir, proc, watcher, log = killed_run
    watcher.join(timeout=700)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    killed_at = max(
        int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert 4 <= killed_at < STEPS

    result, printed = _run(_config(folders), workdir)
    assert "resuming from step" in printed
    assert result["step"] == STEPS
    resumed, step = _latest_params(workdir)
    expected, _ = _latest_params(reference[0])
    assert step == STEPS
    for a, b in zip(resumed, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_sigterm_saves_a_checkpoint_and_stops(folders, reference, tmp_path):
    workdir = tmp_path / "run"

    def preempt_after_the_first_checkpoint():
        deadline = time.monotonic() + 600
        while (
            not (workdir / "checkpoints" / "4").is_dir() and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=preempt_after_the_first_checkpoint, daemon=True).start()
    result, printed = _run(_config(folders, total_steps=10_000), workdir)
    assert result["status"] == "preempted" and 4 < result["step"] < 10_000
    assert f"preempted at step {result['step']}: checkpoint saved" in printed
    assert _latest_params(workdir)[1] == result["step"]


def test_nonfinite_steps_are_skipped_then_stop_the_run(folders, reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference[0], workdir)
    before, _ = _latest_params(workdir)
    config = _config(folders, lmbda=float("nan"), total_steps=STEPS + 10,
                     max_consecutive_nonfinite=3)  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(train_lib.NonFiniteError) as info:
        train_lib.train_and_evaluate(config, workdir)
    message = str(info.value)
    assert "\n" not in message and "3 consecutive non-finite steps" in message
    assert f"last checkpoint: step {STEPS}" in message
    assert out.getvalue().count("update skipped") == 3
    after, step = _latest_params(workdir)
    assert step == STEPS
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_export_reads_the_workdir(reference, tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert llic_main(["export", "--workdir", str(reference[0]), "--out", str(out)]) == 0
    model, variables = llic_jax.load_weights(out)
    assert model == llic_jax.create_model(MODEL, N=16, M=24)
    img = np.zeros((64, 64, 3), np.uint8)
    blob = llic_jax.compress(model, variables, img)
    assert llic_jax.decompress(model, variables, blob).shape == img.shape
    metadata = read_metadata(out)
    assert metadata["steps"] == str(STEPS) and metadata["lmbda"] == "0.0067"
    capsys.readouterr()


def test_bad_configs_fail_with_one_line(folders, tmp_path):
    cases = {
        "input.patch_sizes": ((96,), "not a multiple of 64"),
        "batch_size": (12, "not a multiple of the 8 devices"),
        "metric": ("ssim", "metric"),
        "input.folder": (str(tmp_path / "missing"), "no such directory"),
    }
    for key, (value, match) in cases.items():
        with pytest.raises(ValueError, match=match) as info:
            train_lib.train_and_evaluate(_config(folders, **{key: value}), tmp_path / key)
        assert "\n" not in str(info.value)
