"""Train one architecture at several λ at once, for a wall-clock budget, on one device.

  python -m train.lambda_sweep --model llic-elic-compact --data ../shared/data/bsds300 \
      --lmbdas 0.0035 0.0067 0.013 0.025 --batch 16 --patch 128 --budget-s 400 --out DIR

Made for short leases of an accelerator (a GPU lent for minutes, without TensorFlow): the
whole image set lives in device memory, crops are cut on the device, and one compiled step
trains every λ side by side (`jax.vmap` over stacked parameters, each model with its own
crops, noise, gradient clipping and Adam state). So an RD curve costs one compilation, and
the small per-model batch still fills the device. On an H200 the vmapped step cost 2.3×
as much per model as a step of one model (docs/benchmarks.md): there, run one λ per
process (`train/gpu_lease.sh` does, sharing one compilation through JAX's cache).

Schedule: the first steps (after compilation) time the step; the budget left then fixes the
step count T, and the learning rate is linear warm-up over `--warmup` steps, constant, then
a cosine decay to lr/30 over the last `--decay-fraction` of T. T is estimated again at
every report from the mean step time so far (a machine that slows down, or shares its
cores, still ends the decay inside the budget).

Loss per model: `bpp + λ·MSE₂₅₅` (llic_jax.losses, DESIGN.md §5). Images are box-downscaled
by `--downscale` (bsds300's JPEG artefacts vanish at ×2), turned landscape and centre-cropped
to the smallest size in the set; crops get random flips and transposes (the 8 symmetries of
the square). Output in `--out`: per λ, `params_<λ>.msgpack` (parameters as `--save-dtype`;
its `step` counts the `--init` model's steps too, so they add up across sessions; `--init`
takes one source for every λ or one per λ), and a
line of JSON per report in `log.jsonl`. `--to-workdir PARAMS DIR` turns one into a workdir
that `llic export --workdir` exports (`state.msgpack` layout, llic_jax/export.py).

Each model's optimizer works on its parameters as one flat vector (Adam, clipping and the
NaN guard are a handful of large operations, not one per leaf: the llic-tcm-compact tree
has 1,385 leaves, and a per-leaf update ran out of memory while compiling).
"""

import argparse
import functools
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
from jax.flatten_util import ravel_pytree

import llic_jax
from llic_jax.evaluate import load_images
from llic_jax.losses import rate_distortion_loss
from llic_jax.models import model_config


def stack_images(images: list[np.ndarray]) -> np.ndarray:
    """uint8 [N, h, w, 3]: each image landscape, centre-cropped to the set's smallest size."""
    images = [
        img if img.shape[1] >= img.shape[0] else img.transpose(1, 0, 2) for img in images
    ]
    h = min(img.shape[0] for img in images)
    w = min(img.shape[1] for img in images)

    def centre(img):
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        return img[top : top + h, left : left + w]

    return np.stack([centre(img) for img in images])


def training_images(data: Path, downscale: int, patch: int) -> np.ndarray:
    """uint8 [N, h, w, 3]: the folder's images of at least `patch` px, stacked.

    ValueError where the folder has no such image (or none to read).
    """
    images = [
        img for _, img in load_images(data, downscale) if min(img.shape[:2]) >= patch
    ]
    if not images:
        raise ValueError(f"no image of at least {patch}px in {data}")
    return stack_images(images)  # landscape, so every side stays ≥ patch


def sample_crops(images: jax.Array, key: jax.Array, batch: int, patch: int) -> jax.Array:
    """float32 [batch, patch, patch, 3] in [0, 1]: random crops under a random symmetry."""
    n, h, w, _ = images.shape
    keys = jax.random.split(key, 5)
    index = jax.random.randint(keys[0], (batch,), 0, n)
    top = jax.random.randint(keys[1], (batch,), 0, h - patch + 1)
    left = jax.random.randint(keys[2], (batch,), 0, w - patch + 1)
    flips = jax.random.bernoulli(keys[3], 0.5, (batch, 2))
    transpose = jax.random.bernoulli(keys[4], 0.5, (batch,))

    def one(i, y0, x0, f, tr):
        crop = jax.lax.dynamic_slice(images[i], (y0, x0, 0), (patch, patch, 3))
        crop = jnp.where(f[0], crop[::-1], crop)
        crop = jnp.where(f[1], crop[:, ::-1], crop)
        return jnp.where(tr, crop.transpose(1, 0, 2), crop)

    crops = jax.vmap(one)(index, top, left, flips, transpose)
    return crops.astype(jnp.float32) / 255.0


def learning_rate(step, total: int, peak: float, warmup: int, decay_fraction: float):
    """Warm-up, constant, cosine decay to peak/30 (works on traced steps)."""
    decay_start = total * (1 - decay_fraction)
    progress = jnp.clip((step - decay_start) / max(total - decay_start, 1), 0.0, 1.0)
    cosine = 1 / 30 + (1 - 1 / 30) * 0.5 * (1 + jnp.cos(jnp.pi * progress))
    return peak * jnp.minimum(1.0, (step + 1) / warmup) * cosine


def make_sweep_step(model, clip: float, batch: int, patch: int):
    """jit(step)(state, images, key, lmbdas, lr) → (state, metrics), vmapped over models.

    state = (params, adam_state), every leaf with a leading model axis (adam_state from
    `init_adam`, on flat vectors); lmbdas [M]; metrics: {"loss", "bpp", "mse",
    "grad_norm", "finite"}, each [M]. A model whose loss or gradient is not finite keeps
    its state for that step (finite = 0).
    """
    adam = optax.scale_by_adam()

    def one_model(params, adam_state, images, key, lmbda, lr):
        crop_key, noise_key = jax.random.split(key)
        x = sample_crops(images, crop_key, batch, patch)
        flat, unravel = ravel_pytree(params)

        def loss_fn(vector):
            p = unravel(vector)
            x_hat, bits = model.apply({"params": p}, x, rngs={"noise": noise_key})
            return rate_distortion_loss(x, x_hat, bits, lmbda)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(flat)
        grad_norm = jnp.linalg.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        grads = grads * jnp.minimum(1.0, clip / (grad_norm + 1e-12))
        updates, new_adam = adam.update(grads, adam_state, flat)
        new_flat = jnp.where(finite, flat - lr * updates, flat)
        new_adam = jax.tree.map(
            lambda a, b: jnp.where(finite, a, b), new_adam, adam_state
        )
        metrics = {**metrics, "grad_norm": grad_norm, "finite": finite}
        return unravel(new_flat), new_adam, metrics

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(state, images, key, lmbdas, lr):
        params, adam_state = state
        keys = jax.random.split(key, lmbdas.shape[0])
        params, adam_state, metrics = jax.vmap(
            one_model, in_axes=(0, 0, None, 0, 0, None)
        )(params, adam_state, images, keys, lmbdas, lr)
        return (params, adam_state), metrics

    return step


def init_models(model, key: jax.Array, count: int):
    """`count` random-init parameter sets of `model`, stacked on a leading model axis.

    Eager, one model at a time: a jitted (vmapped) init of llic-elic-compact compiled for
    6.7 minutes on a 2-core CPU; eager init takes seconds.
    """
    each = [
        llic_jax.init(model, k, (64, 64))["params"] for k in jax.random.split(key, count)
    ]
    return jax.tree.map(lambda *p: jnp.stack(p), *each)


def init_adam(params):
    """Adam's state for the sweep step: per model, over the flattened parameters."""
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(params)
    return jax.vmap(optax.scale_by_adam().init)(flat)


def lmbda_tag(lmbda: float) -> str:
    return f"{lmbda:g}"


def save_params(out: Path, model, lmbdas, params, steps: list[int], dtype: str) -> None:
    """One `params_<λ>.msgpack` per model (written to a temp name, then renamed).

    `steps[m]`: model m's total step count (its `--init` steps plus this run's).
    """
    config = json.dumps(model_config(model))
    for m, lmbda in enumerate(lmbdas):
        one = jax.device_get(jax.tree.map(lambda p, m=m: p[m].astype(dtype), params))
        record = {"step": steps[m], "lmbda": lmbda, "model": config, "params": one}
        path = out / f"params_{lmbda_tag(lmbda)}.msgpack"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(flax.serialization.msgpack_serialize(record))
        os.replace(tmp, path)


def load_params(path: Path) -> dict:
    """What `save_params` wrote for one λ, parameters as float32."""
    if not path.exists():
        raise SystemExit(f"error: no such file: {path}")
    saved = flax.serialization.msgpack_restore(path.read_bytes())
    saved["params"] = jax.tree.map(lambda p: np.asarray(p, np.float32), saved["params"])
    return saved


def initial_params(source: Path):
    """(model, float32 params, steps already trained) of a weights file or a workdir.

    The step count comes from the workdir's state or the weights file's `steps` metadata
    (written by `llic export`); 0 where neither records one.
    """
    from llic_jax.export import load_workdir
    from llic_jax.weights import read_metadata

    if source.is_dir():
        model, params, metadata = load_workdir(source)
    else:
        model, variables = llic_jax.load_weights(source)
        params, metadata = variables["params"], read_metadata(source)
    steps = metadata.get("steps", "0")
    steps = int(steps) if steps.isdigit() else 0
    return model, jax.tree.map(lambda p: np.asarray(p, np.float32), params), steps


def to_workdir(params_path: Path, workdir: Path, data: str, model_name: str) -> None:
    """A workdir (`state.msgpack` layout) from saved parameters (Adam state restarts).

    The model comes from the file (`model_name` only for files written before it was stored).
    """
    saved = load_params(params_path)
    config = json.loads(saved["model"]) if "model" in saved else {"name": model_name}
    model = llic_jax.create_model(config["name"], **config.get("options", {}))
    fresh_adam = flax.serialization.to_state_dict(optax.adam(1e-4).init(saved["params"]))
    record = {
        "step": int(saved["step"]),
        "state": {"0": saved["params"], "1": fresh_adam},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "state.msgpack").write_bytes(flax.serialization.msgpack_serialize(record))
    config = {"model": model_config(model), "lmbda": float(saved["lmbda"]), "data": data}
    (workdir / "config.json").write_text(json.dumps(config, indent=1))
    print(f"wrote {workdir} (step {int(saved['step'])}, λ {float(saved['lmbda'])})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llic-elic-compact")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--lmbdas", type=float, nargs="+", default=[0.0035, 0.0067, 0.013, 0.025]
    )
    parser.add_argument("--batch", type=int, default=16, help="crops per model and step")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--downscale", type=int, default=2)
    parser.add_argument(
        "--budget-s", type=float, default=600, help="wall clock, compile included"
    )
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument(
        "--init",
        type=Path,
        nargs="+",
        help="weights (.safetensors) or workdirs to start from: one for every λ, or one "
        "per λ in --lmbdas order",
    )
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--decay-fraction", type=float, default=0.25)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-every", type=int, default=100)
    parser.add_argument("--save-every-s", type=float, default=120)
    parser.add_argument(
        "--save-dtype",
        default="float32",
        choices=["float32", "float16"],
        help="float16 halves the files (a lease may cap what comes back)",
    )
    parser.add_argument("--to-workdir", nargs=2, type=Path, metavar=("PARAMS", "WORKDIR"),
                        help="saved parameters → a workdir for llic export")  # fmt: skip
    args = parser.parse_args(argv)
    if args.to_workdir:
        params_path, workdir = args.to_workdir
        return to_workdir(params_path, workdir, str(args.data), args.model)
    if args.data is None or args.out is None:
        parser.error("--data and --out are required")

    start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        images = training_images(args.data, args.downscale, args.patch)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    lmbdas = jnp.asarray(args.lmbdas, jnp.float32)
    if args.init:
        # One source: fine-tuning to other λ from one trained model, as CompressAI's lower
        # rates are. One per λ: each model goes on from its own earlier run.
        if len(args.init) not in (1, len(args.lmbdas)):
            parser.error(f"--init takes 1 or {len(args.lmbdas)} sources (one per λ), "
                         f"not {len(args.init)}")  # fmt: skip
        sources = args.init * len(args.lmbdas) if len(args.init) == 1 else args.init
        try:  # each distinct source read once (a weights file is checked by a fresh init)
            by_source = {s: initial_params(s) for s in dict.fromkeys(sources)}
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: --init: {error}") from None
        model = by_source[sources[0]][0]
        for source, (other, _, _) in by_source.items():
            if model_config(other) != model_config(model):
                raise SystemExit(f"error: --init {source} is a {other.model_name}, "
                                 f"not the {model.model_name} of {sources[0]}")  # fmt: skip
        loaded = [by_source[source] for source in sources]
        params = jax.tree.map(
            lambda *p: jnp.stack([jnp.asarray(x) for x in p]),
            *[one for _, one, _ in loaded],
        )
        steps_before = [steps for _, _, steps in loaded]
    else:
        model = llic_jax.create_model(args.model)
        steps_before = [0] * len(args.lmbdas)
        params = init_models(model, jax.random.key(args.seed), len(args.lmbdas))
    state = (params, init_adam(params))
    images = jax.device_put(images)
    step_fn = make_sweep_step(model, args.clip, args.batch, args.patch)
    n_params = sum(p[0].size for p in jax.tree.leaves(params))
    print(f"{jax.devices()[0].device_kind}: {model.model_name} ({n_params:,} params) × "
          f"{len(args.lmbdas)} λ, {len(images)} images {images.shape[1:3]}, "
          f"batch {args.batch}×{args.patch}² per model", flush=True)  # fmt: skip

    log = open(args.out / "log.jsonl", "a")  # noqa: SIM115 (open for the whole run)
    step, total, window = 0, args.max_steps, []
    timing_start = last_save = time.time()
    compile_s = None
    while step < total:
        lr = learning_rate(step, total, args.lr, args.warmup, args.decay_fraction)
        key = jax.random.fold_in(jax.random.key(args.seed + 1), step)
        state, metrics = step_fn(state, images, key, lmbdas, lr)
        step += 1
        window.append(metrics)
        if compile_s is None:
            jax.block_until_ready(metrics)
            compile_s = time.time() - timing_start
            timing_start = time.time()
            print(f"compiled + first step in {compile_s:.1f} s", flush=True)
        elif step == 21 or (step > 21 and step % args.report_every == 0):
            # Fix the length of the run (and so the schedule) from the measured step time.
            jax.block_until_ready(metrics)
            step_s = (time.time() - timing_start) / (step - 1)
            left = args.budget_s - (time.time() - start) - 15  # the final save
            total = min(args.max_steps, step + max(int(left / step_s), 0))
            if step == 21:
                print(f"{step_s * 1e3:.1f} ms/step → {total} steps", flush=True)
        if step % args.report_every == 0 or step == total:
            got = jax.device_get(window)
            mean = {k: np.mean([m[k] for m in got], axis=0) for k in got[0]}
            record = {
                "step": step,
                "lr": float(lr),
                "time_s": round(time.time() - start, 1),
            }
            for m, lmbda in enumerate(args.lmbdas):
                psnr = 10 * math.log10(255**2 / max(float(mean["mse"][m]), 1e-10))
                record[lmbda_tag(lmbda)] = {k: float(v[m]) for k, v in mean.items()} | {
                    "psnr": psnr}  # fmt: skip
            log.write(json.dumps(record) + "\n")
            log.flush()
            summary = "  ".join(
                f"λ{lmbda_tag(lm)}: {record[lmbda_tag(lm)]['bpp']:.3f} bpp "
                f"{record[lmbda_tag(lm)]['psnr']:.2f} dB" for lm in args.lmbdas)  # fmt: skip
            print(f"step {step}/{total} ({record['time_s']} s): {summary}", flush=True)
            window = []
        if time.time() - last_save > args.save_every_s:
            save_params(args.out, model, args.lmbdas, state[0],
                        [before + step for before in steps_before], args.save_dtype)  # fmt: skip
            last_save = time.time()
    save_params(args.out, model, args.lmbdas, state[0],
                [before + step for before in steps_before], args.save_dtype)  # fmt: skip
    elapsed = time.time() - start
    peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    memory = f", device memory peak {peak / 2**30:.1f} GiB" if peak else ""
    print(
        f"done: {step} steps in {elapsed:.0f} s (compile {compile_s:.0f} s){memory}",
        flush=True,
    )


if __name__ == "__main__":
    main()
