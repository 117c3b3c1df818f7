"""`make demo`: compress and decompress the bundled photo with the bundled model.

Prints the real bpp (file bytes × 8 / pixels, header included), the estimated bpp of the
eval-mode forward (plus the Wiener filter's bytes, as sent), PSNR with and without the
filters: the bundled post-filter (applied when the model has one and it helps the image;
layers/post_filter.py) and the per-image Wiener filter (sent when it pays at the
weights' λ; coding/wiener_filter.py), and encode/decode times (the first call of each
includes JIT compilation, so both are timed on a second run).
"""

import argparse
import time
from pathlib import Path

import numpy as np

import llic_jax
from llic_jax.cli import read_image
from llic_jax.coding.codec import encode, fingerprint
from llic_jax.metrics import psnr
from llic_jax.post_filter_weights import bundled_post_filter
from llic_jax.weights import DEFAULT_QUALITY, QUALITIES, bundled_path, read_metadata

SAMPLE = Path(llic_jax.__file__).parent / "assets" / "sample.png"


def timed(fn, *args):
    fn(*args)  # compile
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _post_filter_status(applied: bool, post_filter) -> str:
    if applied:
        return "applied"
    # The encoder keeps the unfiltered image when filtering would lower its PSNR.
    return "none bundled" if post_filter is None else "not needed"


def _wiener_status(wiener_bytes: int, lmbda: float | None) -> str:
    if lmbda is None:
        return "off (the weights do not record their λ)"
    return f"{wiener_bytes} bytes" if wiener_bytes else "not needed"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=str(SAMPLE))
    parser.add_argument("--weights", default=None, help="default: the bundled model")
    parser.add_argument("--out", default="demo.llic", help="where to write the stream")
    args = parser.parse_args(argv)

    img = read_image(args.image)
    model, variables = llic_jax.load_weights(args.weights or None)
    weights_name = f"bundled, quality {DEFAULT_QUALITY} of {list(QUALITIES)}"
    post_filter = bundled_post_filter(fingerprint(variables))
    lmbda = read_metadata(args.weights or bundled_path()).get("lmbda")
    lmbda = None if lmbda is None else float(lmbda)
    encoded, enc_s = timed(
        lambda: encode(model, variables, img, post_filter=post_filter, wiener_lmbda=lmbda)
    )
    blob = encoded.blob
    Path(args.out).write_bytes(blob)
    decoded, dec_s = timed(
        lambda: llic_jax.decompress(
            model, variables, Path(args.out).read_bytes(), post_filter=post_filter
        )
    )
    estimate, bits = llic_jax.reconstruct(model, variables, img)
    h, w = img.shape[:2]
    rows = [
        ("image", f"{args.image} ({w}x{h})"),
        ("model", f"{model.model_name} ({args.weights or weights_name})"),
        ("stream", f"{args.out}: {len(blob)} bytes"),
        ("real bpp", f"{8 * len(blob) / (h * w):.4f}"),
        # the model's estimate, plus the Wiener filter's bytes as sent (as `llic eval`)
        ("estimated bpp", f"{(bits + 8 * encoded.wiener_bytes) / (h * w):.4f}"),
        ("post-filter", _post_filter_status(encoded.post_filtered, post_filter)),
        ("Wiener filter", _wiener_status(encoded.wiener_bytes, lmbda)),
        ("PSNR", f"{psnr(img, decoded):.2f} dB"),
        ("PSNR without filters", f"{psnr(img, estimate):.2f} dB"),
        ("encode", f"{enc_s * 1e3:.0f} ms"),
        ("decode", f"{dec_s * 1e3:.0f} ms"),
        (
            "decoded = encoder's image",
            f"{np.array_equal(decoded, encoded.reconstruction)}",
        ),
    ]
    for name, value in rows:
        print(f"{name:<30}{value}")


if __name__ == "__main__":
    main()
