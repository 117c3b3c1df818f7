"""Codec benchmark: encode / decode seconds per image, split into network and coding.

  python -m eval.bench_codec --model llic-elic-compact --sizes 768x512
  python -m eval.bench_codec --weights W.safetensors --json bench.json

For each model and image size: one untimed encode + decode (JIT compilation), then
`--repeats` timed ones; the table shows the median. "network" is every jitted model call
(analysis, hyper-synthesis, the per-step parameter and update functions, synthesis),
waited for; "coding" is the range coder, symbol gathering and the CRC; "total" is the
whole `encode` / `decompress` call (padding and the container included). Peak RSS is
the resident-memory high-water mark of a fresh process that ran only that
configuration. The input is the bundled sample photo resized (bicubic) to each size, or
`--image`. Without `--weights` the model is random-init: its rates, and so its coding
times, are not those of a trained model.
"""

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_SIZES = "512x512,768x512,1920x1080,3840x2160"
SAMPLE = Path(__file__).resolve().parents[1] / "llic_jax" / "assets" / "sample.png"


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' → (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is not positive")
    return width, height


def load_model(model_name: str | None, weights: str | None):
    import jax

    import llic_jax

    if weights:
        return llic_jax.load_weights(weights)
    model = llic_jax.create_model(model_name)
    # Eager: a jitted init of the paper-size models compiles for minutes (llic-tcm-compact
    # 461 s jitted vs 32 s eager on the 2-core CPU).
    variables = llic_jax.init(model, jax.random.key(0), (64, 64))
    return model, llic_jax.build_tables(model, variables)


def run_one(model_name, weights, image_path, size, repeats) -> dict:
    """Times one (model, size) configuration; meant to run in a fresh process."""
    import llic_jax
    from llic_jax.coding.codec import encode
    from llic_jax.coding.phase_times import PhaseTimes

    model, variables = load_model(model_name, weights)
    width, height = size
    img = Image.open(image_path).convert("RGB").resize((width, height), Image.BICUBIC)
    img = np.asarray(img)
    blob = encode(model, variables, img).blob  # compile
    llic_jax.decompress(model, variables, blob)

    runs = []
    for _ in range(repeats):
        enc, dec = PhaseTimes(), PhaseTimes()
        start = time.perf_counter()
        blob = encode(model, variables, img, times=enc).blob
        enc_total = time.perf_counter() - start
        start = time.perf_counter()
        llic_jax.decompress(model, variables, blob, times=dec)
        dec_total = time.perf_counter() - start
        runs.append({
            "encode": enc_total, "encode_network": enc.seconds["network"],
            "encode_coding": enc.seconds["coding"],
            "decode": dec_total, "decode_network": dec.seconds["network"],
            "decode_coding": dec.seconds["coding"],
        })  # fmt: skip
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": model.model_name,
        "weights": weights or "random-init",
        "width": width,
        "height": height,
        "bpp": 8 * len(blob) / (width * height),
        "peak_rss_mib": peak_mib,
        "repeats": repeats,
        **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
    }


def _child(queue, *args):
    try:
        queue.put(run_one(*args))
    except Exception as error:  # reported by the parent, one line
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_isolated(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, *args))
    process.start()
    result = queue.get()
    process.join()
    return result


def print_table(rows, device: str) -> None:
    print(f"\nencode / decode seconds (median), network + coding; device: {device}")
    header = (f"{'model':<20} {'size':>10} {'bpp':>6} {'enc':>7} {'net':>7} {'code':>7}"
              f" {'dec':>7} {'net':>7} {'code':>7} {'peak MiB':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<20} {r['width']:>5}x{r['height']:<4} {r['bpp']:>6.3f} "
              f"{r['encode']:>7.3f} {r['encode_network']:>7.3f} {r['encode_coding']:>7.3f} "
              f"{r['decode']:>7.3f} {r['decode_network']:>7.3f} {r['decode_coding']:>7.3f} "
              f"{r['peak_rss_mib']:>9.0f}")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", action="append", help="registry name (repeatable)")
    group.add_argument("--weights", action="append", help="weights file (repeatable)")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated WxH")
    parser.add_argument("--image", type=Path, default=SAMPLE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if not args.image.is_file():
        parser.error(f"no such image: {args.image}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    configs = [(None, w) for w in args.weights or []] or [
        (m, None) for m in args.model or ["llic-elic-compact"]
    ]

    import jax

    device = jax.devices()[0].device_kind
    rows = []
    for model_name, weights in configs:
        for size in sizes:
            result = run_isolated(
                model_name, weights, str(args.image), size, args.repeats
            )
            if "error" in result:
                sys.exit(f"error: {model_name or weights} at {size[0]}x{size[1]}: "
                         f"{result['error']}")  # fmt: skip
            rows.append(result)
            print(f"  {result['model']} {size[0]}x{size[1]}: encode "
                  f"{result['encode']:.3f} s, decode {result['decode']:.3f} s",
                  flush=True)  # fmt: skip
    print_table(rows, device)
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps({"device": device, "rows": rows}, indent=1))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
