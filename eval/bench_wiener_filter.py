"""Benchmark of the per-image Wiener filter: fit (encoder) and apply (decoder) seconds.

  python -m eval.bench_wiener_filter --sizes 512x512,1920x1080,3840x2160

No model is involved: the "decoder's images" are the bundled sample photo (resized,
bicubic) blurred, scaled and offset (the post-filtered image) plus Gaussian noise (the
synthesis), so the fit has something to correct at every radius. For each size: one
untimed fit + apply, then `--repeats` timed ones; the table shows the median, the payload
the fit chose (bytes, diamond radius, coefficient step) and the peak RSS of the process
so far (float64 planes: the fit's memory grows with the image width).
"""

import argparse
import resource
import statistics
import time

import numpy as np
from PIL import Image

from eval.bench_codec import SAMPLE, parse_size
from llic_jax.coding.wiener_filter import (
    apply_wiener_filter,
    encode_wiener_filter,
    fit_wiener_filter,
)


def degraded(img: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a blurred, scaled copy standing in for the post-filtered image, a noisier one)."""
    x = img.astype(np.float32) / 255
    blurred = x
    for axis in (0, 1):
        blurred = (
            2 * blurred + np.roll(blurred, 1, axis) + np.roll(blurred, -1, axis)
        ) / 4
    noise = np.random.default_rng(seed).normal(0, 0.02, x.shape).astype(np.float32)
    return 0.95 * blurred + 0.02, blurred + noise


def run(size, repeats: int, lmbda: float) -> dict:
    width, height = size
    img = Image.open(SAMPLE).convert("RGB").resize((width, height), Image.BICUBIC)
    img = np.asarray(img)
    filtered, synthesis = degraded(img)
    times = {"fit": [], "apply": []}
    for i in range(repeats + 1):  # the first is untimed
        start = time.perf_counter()
        wiener = fit_wiener_filter(img, filtered, synthesis, lmbda)
        fitted = time.perf_counter()
        apply_wiener_filter(wiener, filtered, synthesis)
        if i:
            times["fit"].append(fitted - start)
            times["apply"].append(time.perf_counter() - fitted)
    return {
        "width": width,
        "height": height,
        "fit": statistics.median(times["fit"]),
        "apply": statistics.median(times["apply"]),
        "bytes": len(encode_wiener_filter(wiener)),
        "radius": wiener.radius,
        "step_log2": wiener.step_log2,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512x512,768x512,1920x1080,3840x2160",
                        type=lambda text: [parse_size(s) for s in text.split(",")],
                        help="comma-separated WxH")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lmbda", type=float, default=0.0067)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    rows = [run(size, args.repeats, args.lmbda) for size in args.sizes]
    print(f"\nWiener filter seconds (median of {args.repeats}), λ {args.lmbda}")
    header = (f"{'size':>10} {'fit':>7} {'apply':>7} {'bytes':>6} {'radius':>6} "
              f"{'step':>6} {'peak MiB':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['width']:>5}x{r['height']:<4} {r['fit']:>7.3f} {r['apply']:>7.3f} "
              f"{r['bytes']:>6} {r['radius']:>6} {'2^-' + str(r['step_log2']):>6} "
              f"{r['peak_rss_mib']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
