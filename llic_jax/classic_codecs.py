"""Classic codecs through Pillow, on the same footing as ours: real file sizes, 8-bit RGB.

`jpeg` (libjpeg via Pillow, optimised Huffman tables, 4:2:0 or 4:4:4 chroma), `webp`
(libwebp lossy, `method=6`: its slowest, best-compressing search) and `avif` (libavif
via Pillow's AVIF plugin, its default encoder and speed, 4:2:0 or 4:4:4). Sizes are the
whole files as written, container included, so bpp means what it means for our streams.
"""

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, features

__all__ = [
    "CODECS",
    "SUBSAMPLINGS",
    "check_supported",
    "decode",
    "default_qualities",
    "encode",
]

CODECS = ("jpeg", "webp", "avif")
SUBSAMPLINGS = ("420", "444")

# Quality sweeps wide enough to bracket learned codecs' 0.1–2 bpp on Kodak. WebP's
# rate falls steeply below quality 5 (kodak24 500×500 crops, method 6: quality 5 is
# 0.238 bpp, 3 is 0.209, 0 is 0.114), so its sweep starts at 0.
_QUALITIES = {
    "jpeg": (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "webp": (0, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "avif": (10, 20, 30, 40, 50, 60, 70, 80, 90),
}


def default_qualities(codec: str) -> Sequence[int]:
    check_supported(codec, "420")
    return _QUALITIES[codec]


def check_supported(codec: str, subsampling: str) -> None:
    """Raises ValueError for an unknown codec, a bad chroma mode or a missing plugin."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(
            f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}"
        )
    if codec == "webp" and subsampling != "420":
        raise ValueError("lossy WebP is always 4:2:0")
    if codec in ("webp", "avif") and not features.check(codec):
        raise ValueError(f"this Pillow build has no {codec.upper()} support")


def encode(codec: str, img: np.ndarray, quality: int, subsampling: str = "420") -> bytes:
    """uint8 RGB [H, W, 3] → the bytes of a `codec` file at `quality` (0–100)."""
    check_supported(codec, subsampling)
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be in 0…100, got {quality}")
    buffer = io.BytesIO()
    image = Image.fromarray(np.asarray(img, np.uint8), "RGB")
    if codec == "jpeg":
        chroma = 2 if subsampling == "420" else 0  # Pillow's codes for 4:2:0 / 4:4:4
        image.save(buffer, "JPEG", quality=quality, optimize=True, subsampling=chroma)
    elif codec == "webp":
        image.save(buffer, "WEBP", quality=quality, method=6)
    else:
        chroma = "4:2:0" if subsampling == "420" else "4:4:4"
        image.save(buffer, "AVIF", quality=quality, subsampling=chroma)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Bytes of any of the codecs → uint8 RGB [H, W, 3]."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def describe(codec: str, subsampling: str) -> str:
    """A name for the curve, with the library versions that made it."""
    versions = {"jpeg": "libjpeg_turbo", "webp": "webp", "avif": "avif"}
    library = features.version(versions[codec]) or "?"
    chroma = (
        "" if codec == "webp" else f", {subsampling[0]}:{subsampling[1]}:{subsampling[2]}"
    )
    return f"{codec.upper()} (Pillow {Image.__version__}, {versions[codec]} {library}{chroma})"
