"""The `llic` command line: info, encode, decode.

  llic info MODEL [--size HxW]
  llic encode IN.png OUT.llic [--weights W | --quality Q]
  llic decode IN.llic OUT.png [--weights W]

Bad input (unreadable image, corrupt stream, wrong weights) ends with one line on stderr
and exit status 1; outputs are written to a temporary file and renamed, so an existing
file is never left half-written.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "read_image", "write_atomically"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as uint8 RGB [H, W, 3].

    Gray and palette images are converted; an alpha channel is dropped only if it is
    fully opaque, otherwise refused; 16-bit and float images are refused.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise CliError(
                    f"{path}: {mode} images (16-bit or float) are not supported"
                )
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            if mode in ("RGBA", "LA", "PA"):
                alpha = np.asarray(img.getchannel("A"))
                if alpha.min() < 255:
                    raise CliError(
                        f"{path}: the image has transparency; flatten it first"
                    )
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CliError(f"{path}: cannot read image ({e})") from None


def write_atomically(path: str | os.PathLike, write) -> None:
    """Calls `write(tmp_path)`, then renames the temporary file to `path`."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{path} is a directory")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CliError(f"{directory}: no such directory")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(weights, quality=None):
    import llic_jax

    if weights is None:
        return llic_jax.load_weights(quality=quality)
    if not Path(weights).is_file():
        raise CliError(f"{weights}: no such file")
    return llic_jax.load_weights(weights)


def cmd_info(args) -> None:
    from llic_jax.info import describe

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise CliError(f"--size must look like 768x512, got {args.size!r}") from None
    print(describe(args.model, height, width))


def cmd_encode(args) -> None:
    import llic_jax

    img = read_image(args.input)
    model, variables = _load(args.weights, args.quality)
    start = time.perf_counter()
    blob = llic_jax.compress(model, variables, img)
    seconds = time.perf_counter() - start
    write_atomically(args.output, lambda tmp: Path(tmp).write_bytes(blob))
    h, w = img.shape[:2]
    print(f"{args.output}: {len(blob)} bytes, {8 * len(blob) / (h * w):.4f} bpp "
          f"({w}x{h}, {model.model_name}, {seconds:.2f} s)")  # fmt: skip


def cmd_decode(args) -> None:
    from PIL import Image

    import llic_jax

    try:
        blob = Path(args.input).read_bytes()
    except OSError as e:
        raise CliError(f"{args.input}: cannot read ({e.strerror})") from None
    model, variables = _load(args.weights)
    start = time.perf_counter()
    img = llic_jax.decompress(model, variables, blob)
    seconds = time.perf_counter() - start
    write_atomically(
        args.output, lambda tmp: Image.fromarray(img).save(tmp, format="PNG")
    )
    print(f"{args.output}: {img.shape[1]}x{img.shape[0]} ({seconds:.2f} s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llic", description="LLIC image codec (JAX).")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="parameters, kMAC/pixel and latent layout")
    info.add_argument("model")
    info.add_argument("--size", default="768x512", help="image size HxW for kMAC/pixel")
    info.set_defaults(run=cmd_info)
    enc = sub.add_parser("encode", help="compress an image to a .llic file")
    enc.add_argument("input")
    enc.add_argument("output")
    enc.add_argument("--weights", help="weights file (default: the bundled model)")
    enc.add_argument(
        "--quality", type=int, help="bundled model quality (default: middle)"
    )
    enc.set_defaults(run=cmd_encode)
    dec = sub.add_parser("decode", help="decompress a .llic file to PNG")
    dec.add_argument("input")
    dec.add_argument("output")
    dec.add_argument("--weights", help="weights file (default: the bundled model)")
    dec.set_defaults(run=cmd_decode)
    return parser


def main(argv=None) -> int:
    """Entry point of the `llic` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    from llic_jax.coding.container import BitstreamError
    from llic_jax.weights import WeightsError

    try:
        args.run(args)
    except (CliError, BitstreamError, WeightsError, ValueError, OSError) as e:
        print(f"llic: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llic: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
