"""A simple single-device training loop (until the sharded trainer replaces it).

Trains any registered model on random crops of a folder of images, resumable from its
workdir, and writes the weights (with coding tables) when done:

  python -m train.single_device --model mbt2018-mean --data ../shared/data/bsds300 \
      --lmbda 0.013 --steps 6000 --workdir /tmp/mbt

Loss (DESIGN.md §5): `bpp + λ·MSE`, MSE on the 0–255 scale, bpp = Σ −log2 p / (H·W)
with noisy latents (uniform noise) for the rate and STE-rounded ones for synthesis.
Images are box-downscaled by `--downscale` before cropping: bsds300 photos are JPEG
files, and halving them hides the JPEG artefacts a codec would otherwise learn to spend
bits on. The crop stream is derived from (seed, step), so a resumed run sees the same
batches it would have seen without the interruption.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

import llic_jax
from llic_jax.losses import rate_distortion_loss
from llic_jax.models import model_config

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm")


def load_images(folder: Path, downscale: int, min_size: int) -> list[np.ndarray]:
    """All images of `folder` (recursive), RGB uint8, box-downscaled, ≥ min_size a side."""
    images = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        img = Image.open(path).convert("RGB")
        if downscale > 1:
            img = img.reduce(downscale)
        if min(img.size) >= min_size:
            images.append(np.asarray(img))
    if not images:
        raise SystemExit(f"error: no image of at least {min_size}px in {folder}")
    return images


def random_batch(images, step: int, seed: int, batch: int, patch: int) -> np.ndarray:
    """float32 [batch, patch, patch, 3] in [0, 1]: random crops and horizontal flips."""
    rng = np.random.default_rng([seed, step])
    crops = []
    for i in rng.integers(len(images), size=batch):
        img = images[i]
        top = rng.integers(img.shape[0] - patch + 1)
        left = rng.integers(img.shape[1] - patch + 1)
        crop = img[top : top + patch, left : left + patch]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return np.stack(crops).astype(np.float32) / 255.0


def learning_rate(args) -> optax.Schedule:
    """Constant `lr`, then cosine decay to lr/30 over the last `decay_fraction` of steps."""
    decay_start = int(args.steps * (1 - args.decay_fraction))
    return optax.join_schedules(
        [
            optax.constant_schedule(args.lr),
            optax.cosine_decay_schedule(args.lr, args.steps - decay_start, alpha=1 / 30),
        ],
        [decay_start],
    )


def make_train_step(model, optimizer, lmbda: float):
    def loss_fn(params, x, rng):
        x_hat, bits = model.apply({"params": params}, x, rngs={"noise": rng})
        return rate_distortion_loss(x, x_hat, bits, lmbda)

    @jax.jit
    def train_step(state, x, rng):
        params, opt_state = state
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, rng)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        # A non-finite step leaves the state untouched.
        keep = lambda new, old: jax.tree.map(
            lambda a, b: jnp.where(finite, a, b), new, old
        )  # noqa: E731
        state = (keep(new_params, params), keep(new_opt_state, opt_state))
        return state, {**metrics, "finite": finite}

    return train_step


def save_state(workdir: Path, step: int, state) -> None:
    tmp = workdir / "state.msgpack.tmp"
    tmp.write_bytes(
        flax.serialization.msgpack_serialize(
            {"step": step, "state": flax.serialization.to_state_dict(state)}
        )
    )
    os.replace(tmp, workdir / "state.msgpack")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mbt2018-mean")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--lmbda", type=float, default=0.013)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--downscale", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--decay-fraction", type=float, default=0.2)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=250)
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    images = load_images(args.data, args.downscale, args.patch)
    model = llic_jax.create_model(args.model)
    # What `llic export --workdir` needs to rebuild the model from the state alone.
    config = {"model": model_config(model), "lmbda": args.lmbda, "data": str(args.data),
              "batch": args.batch, "patch": args.patch, "downscale": args.downscale}  # fmt: skip
    (args.workdir / "config.json").write_text(json.dumps(config, indent=1))
    optimizer = optax.chain(
        optax.clip_by_global_norm(args.clip), optax.adam(learning_rate(args))
    )
    params = llic_jax.init(model, jax.random.key(args.seed))["params"]
    state, step = (params, optimizer.init(params)), 0
    if (args.workdir / "state.msgpack").exists():
        restored = flax.serialization.msgpack_restore(
            (args.workdir / "state.msgpack").read_bytes()
        )
        state = flax.serialization.from_state_dict(state, restored["state"])
        step = int(restored["step"])
        print(f"resumed at step {step}")
    train_step = make_train_step(model, optimizer, args.lmbda)
    log = open(args.workdir / "log.jsonl", "a")  # noqa: SIM115 (open for the whole run)
    t0, window = time.time(), []
    while step < args.steps:
        x = random_batch(images, step, args.seed, args.batch, args.patch)
        rng = jax.random.fold_in(jax.random.key(args.seed + 1), step)
        state, metrics = train_step(state, x, rng)
        step += 1
        window.append(jax.device_get(metrics))
        if step % 50 == 0 or step == args.steps:
            mean = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
            mean["psnr"] = 10 * math.log10(255**2 / max(mean["mse"], 1e-10))
            rate = len(window) / (time.time() - t0)
            print(f"step {step}: loss {mean['loss']:.3f} bpp {mean['bpp']:.3f} "
                  f"psnr {mean['psnr']:.2f} ({rate:.2f} steps/s)", flush=True)  # fmt: skip
            log.write(json.dumps({"step": step, **mean}) + "\n")
            log.flush()
            t0, window = time.time(), []
        if step % args.save_every == 0 or step == args.steps:
            save_state(args.workdir, step, state)
    variables = llic_jax.build_tables(model, {"params": state[0]})
    extra = {"lmbda": str(args.lmbda), "steps": str(step), "data": str(args.data)}
    llic_jax.save_weights(args.workdir / "weights.safetensors", model, variables, extra)
    print(f"wrote {args.workdir / 'weights.safetensors'}")


if __name__ == "__main__":
    main()
