"""RD check of a weights file on a folder of images, against JPEG (Pillow) at equal bpp.

  python -m eval.rd_check --weights W.safetensors --data ../shared/data/kodak24

For every image: real bpp (8 × stream bytes / pixels, header included), estimated bpp
(eval forward, Σ −log2 p / pixels), PSNR of the decoded image, and a bit-exactness check
(decoded == the encoder's own reconstruction). JPEG is swept over Pillow qualities
(4:2:0, optimised Huffman tables) on the same images; its mean RD curve is interpolated
(linearly in bpp) at our mean bpp. Means are over images (PSNR per image, then averaged).
The full `llic eval` / `llic bench` with BD-rates comes with the evaluation issue.
"""

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import llic_jax
from llic_jax.cli import read_image
from llic_jax.coding.codec import encode
from llic_jax.metrics import psnr

JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def jpeg_point(images, quality: int) -> tuple[float, float]:
    bpps, psnrs = [], []
    for img in images:
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, format="JPEG", quality=quality, optimize=True)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        bpps.append(8 * buffer.tell() / (img.shape[0] * img.shape[1]))
        psnrs.append(psnr(img, decoded))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = parser.parse_args(argv)

    model, variables = llic_jax.load_weights(args.weights)
    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    images = [read_image(p) for p in paths]
    rows = []
    for path, img in zip(paths, images, strict=True):
        pixels = img.shape[0] * img.shape[1]
        start = time.perf_counter()
        encoded = encode(model, variables, img)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = llic_jax.decompress(model, variables, encoded.blob)
        dec_s = time.perf_counter() - start
        _, bits = llic_jax.reconstruct(model, variables, img)
        rows.append({
            "image": path.name,
            "bytes": len(encoded.blob),
            "bpp": 8 * len(encoded.blob) / pixels,
            "estimated_bpp": bits / pixels,
            "estimated_bits": bits,
            "psnr": psnr(img, decoded),
            "bit_exact": bool(np.array_equal(decoded, encoded.reconstruction)),
            "encoding_time": enc_s,
            "decoding_time": dec_s,
        })  # fmt: skip
        r = rows[-1]
        print(f"{r['image']:<14} {r['bpp']:.4f} bpp (est {r['estimated_bpp']:.4f})  "
              f"{r['psnr']:.2f} dB  exact={r['bit_exact']}  "
              f"enc {enc_s * 1e3:.0f} ms  dec {dec_s * 1e3:.0f} ms", flush=True)  # fmt: skip

    real_bits = np.array([8 * r["bytes"] for r in rows], np.float64)
    est_bits = np.array([r["estimated_bits"] for r in rows])
    within = real_bits <= est_bits * 1.01 + 800
    ours = (
        float(np.mean([r["bpp"] for r in rows])),
        float(np.mean([r["psnr"] for r in rows])),
    )
    jpeg = [(q, *jpeg_point(images, q)) for q in JPEG_QUALITIES]
    jpeg_bpp = np.array([b for _, b, _ in jpeg])
    jpeg_psnr = np.array([p for _, _, p in jpeg])
    at_ours = float(np.interp(ours[0], jpeg_bpp, jpeg_psnr))

    print(
        f"\n{model.model_name} on {args.data} ({len(rows)} images, first call includes JIT)"
    )
    est_bpp = float(np.mean([r["estimated_bpp"] for r in rows]))
    print(f"  mean real bpp {ours[0]:.4f}, estimated {est_bpp:.4f}; "
          f"real/estimated bits {real_bits.sum() / est_bits.sum():.4f}; "
          f"within 1% + 100 B on {within.sum()}/{len(rows)} images")  # fmt: skip
    print(
        f"  mean PSNR {ours[1]:.2f} dB; all bit-exact: {all(r['bit_exact'] for r in rows)}"
    )
    print(f"  median encode {np.median([r['encoding_time'] for r in rows]) * 1e3:.0f} ms, "
          f"decode {np.median([r['decoding_time'] for r in rows]) * 1e3:.0f} ms")  # fmt: skip
    print("\n  JPEG (Pillow, 4:2:0)   quality   bpp      PSNR")
    for q, b, p in jpeg:
        print(f"  {'':<22}{q:>7}   {b:.4f}   {p:.2f}")
    print(f"\n  JPEG at {ours[0]:.4f} bpp: {at_ours:.2f} dB; ours {ours[1]:.2f} dB "
          f"({ours[1] - at_ours:+.2f} dB)")  # fmt: skip
    if args.out:
        summary = {
            "ours": rows,
            "jpeg": [{"quality": q, "bpp": b, "psnr": p} for q, b, p in jpeg],
        }
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
