r"""Trains a `PostFilter` on a frozen codec's reconstructions; resumable, CPU-sized.

  python -m train.post_filter --quality 3 --data bsds300 --workdir WD --steps 8000 \\
      [--val kodak24] [--weights W.safetensors] [--init FILTER.safetensors \\
      [--grow-blocks N]] [--budget-s SECONDS]
  python -m train.post_filter --workdir WD --export q3-filter.safetensors [--float16] \\
      [--ensemble-gain fit|G]

First it codes every photo of `--data` (and of `--val`) once with the codec's eval-mode
forward (hard rounding, the coder's own tables: what `llic decode` reconstructs, before
rounding to 8 bits) and caches the float16 reconstructions beside the photos in
`WD/pairs_*.npz`. Then Adam on the mean squared error of `filter(x̂)` against the photo
(float [0, 1]) over random `--patch`² crops, mirrored left-right half of the time; lr
warms up linearly over `--warmup` steps and decays by a cosine to 1% at `--steps`. The
state (parameters, optimiser, step, sampler) is written atomically to `WD/state.msgpack`
every `--save-every` steps and at the end, and a later call with the same workdir goes
on from it (a killed run loses at most `--save-every` steps); `WD/log.jsonl` gets the
mean loss every 100 steps and, with `--val`, the PSNR (8-bit RGB, per image, then
averaged) of the filtered and unfiltered reconstructions every `--eval-every` steps.

`--init` starts from a trained filter instead of the identity (its width and blocks):
to go on training one with a fresh schedule, or to adapt a filter to retrained weights
(whose reconstructions differ a little), which needs far fewer steps than from scratch.
`--grow-blocks N` deepens the `--init` filter by N residual blocks that start as the
identity (`grown_params`), so a larger filter starts where the trained one stands.

`--ensemble-gain` (export) sets the gain on the residual of the filter's self-ensemble
that the file carries (llic_jax/post_filter_weights.py): `fit` takes the least-squares
gain on the first 60 of the workdir's cached training reconstructions
(`fit_ensemble_gain`), a number sets it; by default 1, the plain mean.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PAIRS_VERSION = 1
# A fifth of bsds300 (~75 s for an 8-block filter on 2 cores). The fitted gain moves by a
# few hundredths between such subsets (session 28, q3: 1.12 / 1.13 / 1.17 / 1.16 on photos
# 0–59 / 60–119 / 120–179 / 180–239), where the PSNR is flat in the gain.
GAIN_FIT_PHOTOS = 60


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--data", help="folder of training photos")
    p.add_argument("--val", help="folder of held-out photos for the PSNR report")
    p.add_argument("--weights", help="codec weights (default: the bundled --quality)")
    p.add_argument("--quality", type=int, help="bundled codec quality (default: 3)")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=96)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--width", type=int, help="filter channels (default: 48)")
    p.add_argument("--blocks", type=int, help="residual blocks (default: 4)")
    p.add_argument("--init", type=Path, help="start from this trained filter")
    p.add_argument(
        "--grow-blocks",
        type=int,
        default=0,
        help="with --init: append this many residual blocks, each starting as the identity",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument(
        "--budget-s", type=float, help="stop (and save) after this many seconds"
    )
    p.add_argument("--export", type=Path, help="write the trained filter here and exit")
    p.add_argument("--float16", action="store_true", help="export parameters as float16")
    p.add_argument(
        "--ensemble-gain",
        help="with --export: the self-ensemble's residual gain, a number or 'fit' "
        "(least squares on the cached training reconstructions; default: 1)",
    )
    args = p.parse_args(argv)
    if args.ensemble_gain is not None:
        if args.export is None:
            p.error("--ensemble-gain goes with --export")
        if args.ensemble_gain != "fit":
            from llic_jax.post_filter_weights import check_ensemble_gain

            try:
                gain = float(args.ensemble_gain)
            except ValueError:
                p.error(f"--ensemble-gain: {args.ensemble_gain!r} is neither 'fit' "
                        "nor a number")  # fmt: skip
            try:
                args.ensemble_gain = check_ensemble_gain(gain)
            except ValueError as e:
                p.error(f"--ensemble-gain: {e}")
    if args.export is None and args.data is None:
        p.error("--data is needed to train (or --export to write a trained filter)")
    if min(args.steps, args.batch, args.patch, args.save_every, args.eval_every) < 1:
        p.error("--steps, --batch, --patch, --save-every, --eval-every must be ≥ 1")
    if args.init is not None and (args.width or args.blocks):
        p.error("--init takes the filter's width and blocks from its file")
    if args.grow_blocks < 0 or (args.grow_blocks and args.init is None):
        p.error("--grow-blocks needs --init and must be ≥ 0")
    if args.init is None:
        args.width = 48 if args.width is None else args.width
        args.blocks = 4 if args.blocks is None else args.blocks
        if min(args.width, args.blocks) < 1:
            p.error("--width and --blocks must be ≥ 1")
    if not 0 <= args.warmup < args.steps:
        p.error("--warmup must be ≥ 0 and below --steps")
    if args.patch % 2:
        p.error("--patch must be even (the filter folds 2×2 pixels)")
    return args


# --- the codec's reconstructions -------------------------------------------------------


def _load_codec(args):
    from llic_jax.weights import load_weights

    return load_weights(args.weights, quality=args.quality)


def code_folder(model, variables, folder) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo uint8 [H, W, 3], eval-mode reconstruction float16 [H, W, 3] in [0, 1])."""
    import jax
    from PIL import Image

    from llic_jax.coding.codec import pad_image
    from llic_jax.data import list_images

    forward = jax.jit(
        lambda params, x: model.apply({"params": params}, x, method="eval_forward")
    )
    pairs = []
    for path in list_images(folder):
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        x, (h, w) = pad_image(model, img)
        x_hat, _ = forward(variables["params"], x)
        pairs.append(
            (img, np.clip(np.asarray(x_hat[0, :h, :w]), 0, 1).astype(np.float16))
        )
    return pairs


def cached_pairs(workdir: Path, name: str, folder, codec, fingerprint: bytes):
    """`code_folder`, cached in `workdir/pairs_<name>.npz` for this codec and folder."""
    from llic_jax.atomic_write import write_atomically

    path = workdir / f"pairs_{name}.npz"
    key = json.dumps([PAIRS_VERSION, str(Path(folder).resolve()), fingerprint.hex()])
    if path.exists():
        with np.load(path) as f:
            if str(f["key"]) == key:
                return read_pairs(path)
    pairs = code_folder(*codec, folder)
    arrays = {f"x_{i}": x for i, (x, _) in enumerate(pairs)}
    arrays |= {f"x_hat_{i}": xh for i, (_, xh) in enumerate(pairs)}

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, key=key, count=len(pairs), **arrays)

    write_atomically(path, write)
    return pairs


def read_pairs(path: Path, limit: int | None = None):
    """The (photo, reconstruction) pairs of a `cached_pairs` file, the first `limit`."""
    with np.load(path) as f:
        n = int(f["count"]) if limit is None else min(limit, int(f["count"]))
        return [(f[f"x_{i}"], f[f"x_hat_{i}"]) for i in range(n)]


# --- training --------------------------------------------------------------------------


def sample_batch(rng: np.random.Generator, pairs, batch: int, patch: int):
    """Random crops (x̂, x) as float32 [batch, patch, patch, 3], half mirrored."""
    xs, hs = [], []
    for j in rng.integers(0, len(pairs), batch):
        x, x_hat = pairs[j]
        top = rng.integers(0, x.shape[0] - patch + 1)
        left = rng.integers(0, x.shape[1] - patch + 1)
        window = np.s_[top : top + patch, left : left + patch]
        xc, hc = x[window], x_hat[window]
        if rng.random() < 0.5:
            xc, hc = xc[:, ::-1], hc[:, ::-1]
        xs.append(xc)
        hs.append(hc)
    return np.stack(hs).astype(np.float32), np.stack(xs).astype(np.float32) / 255.0


def psnr_8bit(img: np.ndarray, x_hat: np.ndarray) -> float:
    """PSNR of a float [0, 1] reconstruction after rounding to 8 bits, against uint8 img."""
    from llic_jax.metrics import psnr

    return float(psnr(img, np.clip(np.rint(x_hat * 255.0), 0, 255).astype(np.uint8)))


def padded_to_even(x_hat: np.ndarray) -> np.ndarray:
    """[H, W, 3] → float32 [H', W', 3] with H', W' even, as the filter's 2×2 fold needs.

    The last row/column is repeated where H or W is odd; crop the output back to [H, W].
    """
    h, w = x_hat.shape[:2]
    return np.pad(x_hat.astype(np.float32), ((0, h % 2), (0, w % 2), (0, 0)), "edge")


def evaluate(apply, params, pairs) -> tuple[float, float]:
    """Mean PSNR (per image, then averaged) unfiltered and filtered."""
    base, filtered = [], []
    for x, x_hat in pairs:
        h, w = x.shape[:2]
        out = np.asarray(apply(params, padded_to_even(x_hat)[None]))[0, :h, :w]
        base.append(psnr_8bit(x, x_hat.astype(np.float32)))
        filtered.append(psnr_8bit(x, out))
    return float(np.mean(base)), float(np.mean(filtered))


def _settings(args, fingerprint: bytes, init) -> dict:
    keys = ("steps", "batch", "patch", "lr", "warmup", "width", "blocks", "seed")
    settings = {"codec_fingerprint": fingerprint.hex(),
                "data": str(Path(args.data).resolve()),
                **{k: getattr(args, k) for k in keys}}  # fmt: skip
    if init is not None:  # absent otherwise, so workdirs from before --init still resume
        settings["init"] = f"{args.init.name}:{init.digest()}"
    return settings


def _load_init(args, fingerprint: bytes):
    """The `--init` filter (setting args.width and args.blocks from it), or None."""
    if args.init is None:
        return None
    from llic_jax.post_filter_weights import load_post_filter
    from llic_jax.weights import WeightsError

    try:
        init = load_post_filter(args.init)
    except WeightsError as e:
        raise ValueError(str(e)) from None
    args.width = init.module.width
    args.blocks = init.module.blocks + args.grow_blocks
    if init.codec_fingerprint != fingerprint:
        print(f"{args.init.name} was trained for other weights "
              f"({init.codec_fingerprint.hex()}): adapting it to {fingerprint.hex()}")  # fmt: skip
    return init


def grown_params(module, trained: dict, key):
    """`trained` (a filter with as many blocks as `module` or fewer) in its parameters.

    The blocks `trained` lacks are appended after its own, before the head, with their
    second convolution at zero: each starts as the identity, so the grown filter computes
    exactly what `trained` did and training goes on from there (a function-preserving
    deepening, as Net2Net's; Chen, Goodfellow, Shlens, ICLR 2016).
    """
    import jax
    import jax.numpy as jnp

    params = dict(module.init(key, jnp.zeros((1, 8, 8, 3)))["params"])
    if extra := sorted(set(trained) - set(params)):
        raise ValueError(f"the --init filter has {', '.join(extra)}, which a "
                         f"{module.blocks}-block filter lacks")  # fmt: skip
    for name in params:
        if name in trained:
            params[name] = jax.tree.map(jnp.asarray, trained[name])
        else:  # a new residual block
            block = dict(params[name])
            block["conv_1"] = jax.tree.map(jnp.zeros_like, block["conv_1"])
            params[name] = block
    return params


def train(args) -> None:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import serialization

    from llic_jax.atomic_write import write_atomically
    from llic_jax.coding.codec import fingerprint as codec_fingerprint
    from llic_jax.layers.post_filter import PostFilter

    args.workdir.mkdir(parents=True, exist_ok=True)
    codec = _load_codec(args)
    fingerprint = codec_fingerprint(codec[1])
    init = _load_init(args, fingerprint)
    settings = _settings(args, fingerprint, init)
    settings_path = args.workdir / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        old = json.loads(settings_path.read_text())
        differ = sorted(k for k in settings if old.get(k) != settings[k])
        raise ValueError(
            f"{args.workdir} holds a run with other settings ({', '.join(differ)})"
        )
    write_atomically(
        settings_path, lambda tmp: Path(tmp).write_text(json.dumps(settings))
    )

    t0 = time.time()
    pairs = [p for p in cached_pairs(args.workdir, "train", args.data, codec, fingerprint)
             if min(p[0].shape[:2]) >= args.patch]  # fmt: skip
    if not pairs:
        raise ValueError(f"{args.data}: no photo of at least {args.patch}² pixels")
    val = (
        cached_pairs(args.workdir, "val", args.val, codec, fingerprint)
        if args.val
        else []
    )
    print(f"{len(pairs)} training photos, {len(val)} held out ({time.time() - t0:.0f} s)")

    module = PostFilter(width=args.width, blocks=args.blocks)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, args.lr, args.warmup, args.steps, end_value=args.lr * 0.01
    )
    optimiser = optax.adam(schedule)
    if init is None:
        params = module.init(jax.random.PRNGKey(args.seed), jnp.zeros((1, 8, 8, 3)))
        params = params["params"]
    else:
        params = grown_params(module, init.params, jax.random.PRNGKey(args.seed))
    state = {"params": params, "opt": optimiser.init(params), "step": 0, "sampler": ""}
    state_path = args.workdir / "state.msgpack"
    if state_path.exists():
        state = serialization.from_bytes(state, state_path.read_bytes())
    rng = np.random.default_rng(args.seed)
    if state["sampler"]:
        rng.bit_generator.state = json.loads(state["sampler"])

    @jax.jit
    def step(params, opt_state, x_hat, x):
        def loss(p):
            return jnp.mean((module.apply({"params": p}, x_hat) - x) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    apply = jax.jit(lambda p, x: module.apply({"params": p}, x))

    def save():
        state["sampler"] = json.dumps(rng.bit_generator.state)
        data = serialization.to_bytes(jax.device_get(state))
        write_atomically(state_path, lambda tmp: Path(tmp).write_bytes(data))

    def log(record):
        with open(args.workdir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    start, t0, losses = int(state["step"]), time.time(), []
    params, opt_state = state["params"], state["opt"]
    for i in range(start, args.steps):
        x_hat, x = sample_batch(rng, pairs, args.batch, args.patch)
        params, opt_state, value = step(params, opt_state, x_hat, x)
        losses.append(float(value))
        done = i + 1
        state.update(params=params, opt=opt_state, step=done)
        if done % 100 == 0:
            seconds = (time.time() - t0) / (done - start)
            loss = float(np.mean(losses[-100:]))
            log({"step": done, "loss": loss, "s_per_step": seconds})
            print(f"step {done}: loss {loss:.6f}, {seconds:.2f} s/step", flush=True)
        if val and (done % args.eval_every == 0 or done == args.steps):
            base, filtered = evaluate(apply, params, val)
            log({"step": done, "val_psnr": filtered, "val_psnr_unfiltered": base})
            print(
                f"step {done}: held-out PSNR {base:.3f} → {filtered:.3f} dB", flush=True
            )
        if done % args.save_every == 0 or done == args.steps:
            save()
        if args.budget_s and time.time() - t0 > args.budget_s:
            save()
            print(f"budget spent at step {done}; run again to go on")
            return
    print(f"done: {int(state['step'])} steps in {args.workdir}")


def fit_ensemble_gain(loaded_filter, pairs) -> tuple[float, float, float]:
    """The least-squares gain g of x̂ + g·(mean − x̂) over `pairs`, to two decimals.

    mean is the filter's self-ensemble (`dihedral_mean`); the sums run over every pixel
    and channel of every pair (float, before 8-bit rounding). Returns (g, the 8-bit PSNR
    of the plain mean, that with g), PSNR per image then averaged.
    """
    import dataclasses

    from llic_jax.post_filter_weights import check_ensemble_gain

    plain = dataclasses.replace(loaded_filter, ensemble_gain=1.0)
    along = across = 0.0
    residuals = []
    for x, x_hat in pairs:
        h, w = x.shape[:2]
        x_hat = x_hat.astype(np.float32)
        r = (
            np.asarray(plain(padded_to_even(x_hat)[None], ensemble=True))[0, :h, :w]
            - x_hat
        )
        # float32 residuals (60 bsds300 photos: ~110 MB kept), sums in float64
        along += float(np.sum((x / 255.0 - x_hat) * r, dtype=np.float64))
        across += float(np.sum(np.square(r, dtype=np.float64)))
        residuals.append(r)
    if across == 0.0:
        raise ValueError("the filter's ensemble leaves the reconstructions as they are")
    gain = check_ensemble_gain(round(along / across, 2))
    before, after = (
        float(np.mean([psnr_8bit(x, xh.astype(np.float32) + g * r)
                       for (x, xh), r in zip(pairs, residuals, strict=True)]))
        for g in (1.0, gain)
    )  # fmt: skip
    return gain, before, after


def export(args) -> None:
    import jax.numpy as jnp
    from flax import serialization

    from llic_jax.layers.post_filter import PostFilter
    from llic_jax.post_filter_weights import save_post_filter

    settings_path, state_path = (
        args.workdir / "settings.json",
        args.workdir / "state.msgpack",
    )
    if not (settings_path.exists() and state_path.exists()):
        raise ValueError(f"{args.workdir}: no trained post-filter there")
    settings = json.loads(settings_path.read_text())
    module = PostFilter(width=settings["width"], blocks=settings["blocks"])
    state = serialization.msgpack_restore(state_path.read_bytes())
    params = state["params"]
    module.apply({"params": params}, jnp.zeros((1, 8, 8, 3)))  # the tensors must fit
    extra = {
        "steps": str(state["step"]),
        "data": Path(settings["data"]).name,
        "lr": str(settings["lr"]),
        "crops": f"{settings['batch']} x {settings['patch']}^2",
    }
    if "init" in settings:  # the steps above come on top of this filter's
        extra["init"] = settings["init"]
    fingerprint = bytes.fromhex(settings["codec_fingerprint"])
    dtype = "float16" if args.float16 else "float32"
    gain = 1.0 if args.ensemble_gain is None else args.ensemble_gain
    if gain == "fit":
        gain = _fitted_gain(args.workdir, module, params, fingerprint, dtype)
    save_post_filter(args.export, module, params, fingerprint, extra, dtype, gain)
    print(f"wrote {args.export} ({state['step']} steps)")


def _fitted_gain(workdir: Path, module, params, fingerprint: bytes, dtype: str) -> float:
    """`fit_ensemble_gain` of the filter as exported (`dtype`) on the workdir's pairs."""
    import jax

    from llic_jax.post_filter_weights import LoadedPostFilter

    pairs_path = workdir / "pairs_train.npz"
    if not pairs_path.exists():
        raise ValueError(f"{workdir}: no cached training reconstructions to fit the "
                         "ensemble gain on (pairs_train.npz)")  # fmt: skip
    pairs = read_pairs(pairs_path, GAIN_FIT_PHOTOS)
    stored = jax.tree.map(
        lambda p: np.asarray(p).astype(dtype).astype(np.float32), params
    )
    t0 = time.time()
    gain, before, after = fit_ensemble_gain(
        LoadedPostFilter(module, stored, fingerprint), pairs
    )
    print(f"ensemble gain {gain:g}, fitted on {len(pairs)} training photos: 8-bit PSNR "
          f"{before:.3f} → {after:.3f} dB ({time.time() - t0:.0f} s)")  # fmt: skip
    return gain


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        export(args) if args.export else train(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to go on from {args.workdir}",
              file=sys.stderr)  # fmt: skip
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
