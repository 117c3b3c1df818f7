"""Encoder-side latent refinement: what each number of steps buys, and what it costs.

  python -m eval.bench_refinement --data DIR                      # bundled q3, 20/60 steps
  python -m eval.bench_refinement --data DIR --quality 2 4 --steps 20,100,300 --limit 8
  python -m eval.bench_refinement --weights W.safetensors --data DIR --json refine.json

Per weights file and number of steps (0 = the analysis latents, the baseline), over the
images: the estimated bpp (bits of the eval forward with continuous scales, over the
padded latents, divided by the original H·W; DESIGN.md §5 — within ~1% of the coder, see
docs/results.md), PSNR of the 8-bit reconstruction (RGB, per image, then averaged), the
change of each image's RD cost `bpp + λ·MSE(0–255)` against the analysis latents (mean
and least improvement), and seconds of refinement per image (a one-step warm-up
compiles the refinement for every row before the clock runs).

No range coding, so no TensorFlow: this runs on the lent GPU machines, where the
refinement's trade-off (steps against encode time) is the open question
(coding/latent_refinement.py).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_STEPS = "20,60"


def parse_steps(text: str) -> list[int]:
    """'20,60' → [20, 60]; every entry a positive integer."""
    try:
        steps = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps {text!r} are not integers") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"steps {text!r} must be positive")
    return steps


def measure(model, variables, images, lmbda: float, steps: list[int], **settings):
    """Rows of figures, the first for the analysis latents, then one per `steps`.

    `settings` go to `Refinement` (learning_rate, temperatures, seed).
    """
    import jax
    import jax.numpy as jnp

    from llic_jax import Refinement
    from llic_jax.coding.codec import crop_image, pad_image, to_uint8
    from llic_jax.coding.latent_refinement import refine_latents
    from llic_jax.coding.placement import centred_placement

    params = variables["params"]

    @jax.jit
    def analysis(x):
        return model.apply({"params": params}, x, method="analysis")

    @jax.jit
    def hard_forward(y, z):
        return model.apply({"params": params}, y, z, jnp.round, method="relaxed_forward")

    def figures(img, y, z, size, placement):
        x_hat, bits = hard_forward(y, z)
        decoded = to_uint8(crop_image(x_hat, size, placement)).astype(np.float64)
        h, w = size
        mse = float(np.mean((decoded - img) ** 2))
        bpp = float(bits.sum()) / (h * w)
        psnr = 10 * np.log10(255.0**2 / max(mse, 1e-10))
        return {"bpp": bpp, "psnr": psnr}

    start = []  # per image: (padded x, size, placement, y, z, analysis' figures)
    for img in images:
        placement = centred_placement(model, *img.shape[:2])  # as the codec does
        x, size = pad_image(model, img, placement)
        y, z = analysis(x)
        start.append((x, size, placement, y, z, figures(img, y, z, size, placement)))
    rows = [_row(0, [s[-1] for s in start], [0.0] * len(images), [])]
    print_row(rows[0])
    if start:  # one step compiles the refinement for every row
        x, size, placement, y, z, _ = start[0]
        refine_latents(model, params, x, size, y, z, Refinement(lmbda, 1, **settings),
                       placement=placement)  # fmt: skip
    for n in steps:
        refinement = Refinement(lmbda=lmbda, steps=n, **settings)
        results, changes, seconds = [], [], []
        for img, (x, size, placement, y, z, _) in zip(images, start, strict=True):
            began = time.perf_counter()
            (y_r, z_r), costs = refine_latents(
                model, params, x, size, y, z, refinement, placement=placement
            )
            seconds.append(time.perf_counter() - began)  # costs are host floats
            results.append(figures(img, y_r, z_r, size, placement))
            changes.append(costs["cost_after"] / costs["cost_before"] - 1)
        rows.append(_row(n, results, changes, seconds))
        print_row(rows[-1])
    return rows


def _row(steps: int, after: list[dict], change: list[float], seconds: list[float]):
    return {
        "steps": steps,
        "images": len(after),
        "bpp": float(np.mean([a["bpp"] for a in after])),
        "psnr": float(np.mean([a["psnr"] for a in after])),
        "rd_cost_change_mean": float(np.mean(change)),
        "rd_cost_change_least": float(np.max(change)),
        "seconds_per_image": float(np.mean(seconds)) if seconds else 0.0,
    }


HEADER = "  steps  bpp (est.)  PSNR      RD cost: mean   least    s / image"


def print_row(row: dict) -> None:
    print(f"  {row['steps']:<6} {row['bpp']:.4f}      {row['psnr']:.3f}    "
          f"{100 * row['rd_cost_change_mean']:+7.2f}%  {100 * row['rd_cost_change_least']:+7.2f}%"
          f"  {row['seconds_per_image']:8.2f}", flush=True)  # fmt: skip


def _load(path: Path, lmbda: float | None):
    """(model, variables, λ) of a weights file; λ from its metadata unless given."""
    from llic_jax import weights

    model, variables = weights.load_weights(path)
    lmbda = lmbda or weights.read_metadata(path).get("lmbda")
    if lmbda is None:
        raise ValueError(f"{path}: no λ in the weights' metadata (give --lmbda)")
    return model, variables, float(lmbda)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", nargs="+", type=Path, help="weights files")
    source.add_argument(
        "--quality",
        nargs="+",
        type=int,
        help="bundled qualities (default: the default one)",
    )
    parser.add_argument("--data", type=Path, required=True, help="a folder of images")
    parser.add_argument(
        "--steps",
        type=parse_steps,
        default=parse_steps(DEFAULT_STEPS),
        help=f"comma-separated numbers of steps (default {DEFAULT_STEPS})",
    )
    parser.add_argument("--limit", type=int, help="only the first N images (by name)")
    parser.add_argument(
        "--learning-rate", type=float, help="Adam's initial step (default: Refinement's)"
    )
    parser.add_argument(
        "--lmbda", type=float, help="λ of the loss (default: the weights')"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be positive")

    from llic_jax import weights
    from llic_jax.atomic_write import check_destination
    from llic_jax.cli import CliError
    from llic_jax.evaluate import load_images
    from llic_jax.rd_results import write_json

    try:
        if args.json is not None:
            check_destination(args.json)
        images = [img for _, img in load_images(args.data)][: args.limit]
    except (CliError, OSError, ValueError) as error:
        parser.error(str(error))
    if args.weights:
        paths = args.weights
    else:
        try:
            paths = [weights.bundled_path(q) for q in args.quality or [None]]
        except ValueError as error:
            parser.error(str(error))
    settings = {}
    if args.learning_rate is not None:
        settings["learning_rate"] = args.learning_rate

    import jax

    device = jax.devices()[0].device_kind
    report = {}
    for path in paths:
        try:
            model, variables, lmbda = _load(path, args.lmbda)
            print(f"{path.name} ({model.model_name}, λ {lmbda}), {len(images)} images, "
                  f"{device}:\n{HEADER}", flush=True)  # fmt: skip
            rows = measure(model, variables, images, lmbda, args.steps, **settings)
        except ValueError as error:  # unreadable weights, no λ, a setting out of range
            parser.error(str(error))
        report[str(path) if args.weights else path.name] = {
            "model": model.model_name,
            "lmbda": lmbda,
            "rows": rows,
        }
    if args.json is not None:
        write_json(
            args.json, {"data": str(args.data), "device": device, "models": report}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
