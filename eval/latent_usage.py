"""Where a trained model's bits go: hyper-latent vs latent, coding steps, active channels.

  python -m eval.latent_usage                                   # the bundled models
  python -m eval.latent_usage --weights W.safetensors --data DIR --json usage.json

Per weights file, over the images (the eval-mode forward, `eval_latents`: the coder's
own steps and table-snapped scales, so the rates are the estimated bpp of `llic eval`):
- rate: estimated bpp of z and of y (bits over the padded latents, divided by the
  original H·W, DESIGN.md §5), and the share of z's symbols that are not 0;
- y's channels: how many are *active* (at least `--active-share` of their symbols ≠ 0
  over all images and positions) and how few hold 90% of y's bits;
- PSNR (8-bit RGB, per image, then averaged) of the decoded image and of the synthesis
  of the unquantised latent, `g_s(y)`: a probe of what the transform pair itself
  reaches at this λ (not a strict bound: trained with STE rounding, `g_s` has only
  seen quantised latents);
- per coding step: the channels it covers, the share of their positions, bpp.

A collapsed hyperprior (z ≈ 0 bits) or a latent with few active channels shows here
long before it shows as a flat RD curve.
"""

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "llic_jax" / "assets" / "sample.png"
BITS_SHARE = 0.9  # "how many channels hold this share of y's bits"


@functools.lru_cache(maxsize=8)
def _usage_fn(model):
    import jax

    def usage(params, x):
        latents = model.apply({"params": params}, x, method="eval_latents")
        synthesis = functools.partial(model.apply, {"params": params}, method="synthesis")
        return {
            "bits_y": latents["bits_y"][0],
            "bits_z": latents["bits_z"][0],
            "symbols_y": latents["symbols_y"][0],
            "z_hat": latents["z_hat"][0],
            "x_hat": synthesis(latents["y_hat"])[0],
            "x_unquantised": synthesis(latents["y"])[0],
        }

    return jax.jit(usage)


def _psnr(img: np.ndarray, x_hat: np.ndarray, placement: tuple[int, int]) -> float:
    from llic_jax.coding.codec import crop_image, to_uint8
    from llic_jax.metrics import psnr

    return float(psnr(img, to_uint8(crop_image(x_hat[None], img.shape[:2], placement))))


def _image_usage(model, params, img: np.ndarray) -> dict:
    """Bit and symbol counts of one image (sums, so that images can be added up)."""
    from llic_jax.coding.codec import pad_image
    from llic_jax.coding.placement import centred_placement

    placement = centred_placement(model, *img.shape[:2])  # where the codec puts it
    x, (h, w) = pad_image(model, img, placement)
    out = {k: np.asarray(v) for k, v in _usage_fn(model)(params, x).items()}
    bits_y = out["bits_y"]
    masks = model.coding_masks(bits_y.shape)
    return {
        "pixels": h * w,
        "latent_shape": bits_y.shape,
        "positions": bits_y.shape[0] * bits_y.shape[1],
        "bits_z": float(out["bits_z"].sum()),
        "z_nonzero": int((out["z_hat"] != 0).sum()),
        "z_count": out["z_hat"].size,
        "step_bits": np.array([bits_y[mask].sum() for mask in masks]),
        "channel_bits": bits_y.sum(axis=(0, 1)),
        "channel_nonzero": (out["symbols_y"] != 0).sum(axis=(0, 1)),
        "psnr_decoded": _psnr(img, out["x_hat"], placement),
        "psnr_unquantised": _psnr(img, out["x_unquantised"], placement),
    }


def measure(model, variables, images: list[np.ndarray], active_share: float) -> dict:
    """Usage figures of one model over `images` (uint8 [H, W, 3] each)."""
    per_image = [_image_usage(model, variables["params"], img) for img in images]
    total = lambda key: sum(usage[key] for usage in per_image)  # noqa: E731
    mean = lambda key: float(np.mean([usage[key] for usage in per_image]))  # noqa: E731
    pixels, channel_bits = total("pixels"), total("channel_bits")
    share = total("channel_nonzero") / total("positions")
    bits_y = channel_bits.sum()
    by_bits = np.cumsum(np.sort(channel_bits)[::-1])
    holding = int(np.searchsorted(by_bits, BITS_SHARE * bits_y)) + 1
    # The layout of the first image: channels and position shares do not depend on the
    # size (up to a checkerboard's odd row or column).
    masks = model.coding_masks(per_image[0]["latent_shape"])
    layout = [_step_layout(mask) for mask in masks]
    return {
        "images": len(images),
        "bpp": float((total("bits_z") + bits_y) / pixels),
        "bpp_z": float(total("bits_z") / pixels),
        "bpp_y": float(bits_y / pixels),
        "z_nonzero_share": total("z_nonzero") / total("z_count"),
        "channels": len(channel_bits),
        "active_channels": int((share >= active_share).sum()),
        "active_share": active_share,
        "channels_holding_90pct": min(holding, len(channel_bits)),
        "psnr_decoded": mean("psnr_decoded"),
        "psnr_unquantised": mean("psnr_unquantised"),
        "steps": [
            {**part, "bpp": float(bits / pixels)}
            for part, bits in zip(layout, total("step_bits"), strict=True)
        ],
        "channel_bpp": (channel_bits / pixels).tolist(),
        "channel_nonzero_share": share.tolist(),
    }


def _step_layout(mask: np.ndarray) -> dict:
    """The channels a coding step covers and the share of their positions."""
    channels = np.flatnonzero(mask.any(axis=(0, 1)))
    share = mask.sum() / (mask.shape[0] * mask.shape[1] * len(channels))
    return {"first_channel": int(channels[0]), "last_channel": int(channels[-1]),
            "position_share": float(share)}  # fmt: skip


def print_usage(name: str, usage: dict) -> None:
    bpp, z = usage["bpp"], usage["bpp_z"]
    print(f"{name}: {usage['images']} image(s)")
    print(
        f"  rate (est.)     {bpp:.4f} bpp = z {z:.4f} ({100 * z / bpp:.1f}%) + y "
        f"{usage['bpp_y']:.4f}; z symbols ≠ 0: {100 * usage['z_nonzero_share']:.1f}%"
    )
    print(
        f"  y channels      {usage['active_channels']} of {usage['channels']} active "
        f"(≥ {100 * usage['active_share']:g}% of symbols ≠ 0); "
        f"{usage['channels_holding_90pct']} hold 90% of y's bits"
    )
    print(
        f"  PSNR            {usage['psnr_decoded']:.2f} dB decoded, "
        f"{usage['psnr_unquantised']:.2f} dB from the unquantised y"
    )
    print("  step  channels   positions  bpp     share of y")
    for k, step in enumerate(usage["steps"]):
        channels = f"{step['first_channel']}–{step['last_channel']}"
        print(f"  {k:<5} {channels:<10} {100 * step['position_share']:>8.0f}%  "
              f"{step['bpp']:.4f}  {100 * step['bpp'] / usage['bpp_y']:>6.1f}%")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights",
        action="append",
        type=Path,
        help="weights file (repeatable; default: the bundled models)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SAMPLE,
        help="an image or a folder of images (default: the sample photo)",
    )
    parser.add_argument("--name", help="a label stored in the JSON (e.g. the data set)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--active-share",
        type=float,
        default=0.01,
        help="a channel is active if this share of its symbols is ≠ 0",
    )
    args = parser.parse_args(argv)
    if not 0 < args.active_share <= 1:
        parser.error("--active-share must be in (0, 1]")

    from llic_jax import weights
    from llic_jax.atomic_write import check_destination
    from llic_jax.cli import CliError, read_image
    from llic_jax.evaluate import load_images
    from llic_jax.rd_results import write_json

    try:
        if args.json is not None:
            check_destination(args.json)
        if args.data.is_dir():
            images = [img for _, img in load_images(args.data)]
        else:
            images = [read_image(args.data)]
        if not images:
            raise ValueError(f"{args.data}: no images")
    except (CliError, OSError, ValueError) as error:
        parser.error(str(error))
    paths = args.weights or [weights.bundled_path(q) for q in sorted(weights.BUNDLED)]

    # Keyed by the weights as given; the bundled models by file name (no local paths).
    report = {}
    for path in paths:
        try:
            model, variables = weights.load_weights(path)
        except weights.WeightsError as error:
            parser.error(str(error))
        usage = measure(model, variables, images, args.active_share)
        lmbda = weights.read_metadata(path).get("lmbda")
        key = str(path) if args.weights else path.name
        report[key] = {"model": model.model_name, "lmbda": lmbda, **usage}
        name = f"{path.name} ({model.model_name}" + (f", λ {lmbda})" if lmbda else ")")
        print_usage(name, usage)
    if args.json is not None:
        write_json(args.json, {"name": args.name or str(args.data), "models": report})
    return 0


if __name__ == "__main__":
    sys.exit(main())
