"""RD evaluation of trained models and classic codecs over a folder of images.

`evaluate_model` codes every image for real (`compress` → bytes → `decompress`); the
estimated rate is the model's −log2 p of the symbols the encoder coded (the eval-mode
forward's estimate, without running the network twice); `evaluate_classic` sweeps a classic
codec's quality. Both return RD points `{"label", "images": [row, ...]}` for
`rd_results.curve`; a row holds the image name, real and estimated bpp, PSNR, MS-SSIM
(linear; None for images under 161 pixels a side), encode / decode seconds and, when coded
for real, `bit_exact`: the decoder's image equals the encoder's own reconstruction.
Timing excludes JIT compilation: the first image of every padded size is coded once,
untimed, before its timed run.
"""

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from llic_jax import classic_codecs
from llic_jax.metrics import ms_ssim, psnr

__all__ = [
    "IMAGE_SUFFIXES",
    "evaluate_classic",
    "evaluate_model",
    "find_images",
    "load_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff")


def find_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def load_images(
    folder: str | os.PathLike, downscale: int = 1
) -> list[tuple[str, np.ndarray]]:
    """(file name, uint8 RGB) for every image of `folder`.

    `downscale` > 1 box-filters each image by that factor (PIL's `Image.reduce`, the
    training input's convention: llic_jax.data).
    """
    from PIL import Image

    from llic_jax.cli import read_image

    images = [(p.name, read_image(p)) for p in find_images(folder)]
    if downscale > 1:
        reduce = lambda img: np.asarray(Image.fromarray(img).reduce(downscale))  # noqa: E731
        images = [(name, reduce(img)) for name, img in images]
    return images


def _progress(items: Sequence, description: str, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="img", leave=False, dynamic_ncols=True)


def _quality(img: np.ndarray, decoded: np.ndarray) -> dict:
    small = min(img.shape[:2]) < 161
    return {
        "psnr": psnr(img, decoded),
        "ms_ssim": None if small else ms_ssim(img, decoded),
    }


def evaluate_model(
    model,
    variables,
    images: Sequence[tuple[str, np.ndarray]],
    *,
    entropy_estimation: bool = False,
    save_recon: str | os.PathLike | None = None,
    progress: bool = True,
    label: str = "",
    refinement=None,
    orientation_lmbda: float | None = None,
    placement_lmbda: float | None = None,
    finished: Mapping[str, dict] | None = None,
    on_row: Callable[[dict], None] | None = None,
    post_filter=None,
    post_filter_ensemble: bool = False,
    wiener_lmbda: float | None = None,
    coarseness: int = 0,
) -> dict:
    """One RD point: every image coded with (`model`, `variables`).

    Args:
      images: (name, uint8 RGB) pairs.
      entropy_estimation: skip the coder; `bpp` is then the eval forward's estimate
        and `encoding_time` the forward's.
      save_recon: folder for the decoded images (PNG, named after the inputs).
      progress: show a progress bar on stderr.
      label: names the point in the results (e.g. the weights file).
      refinement: a `llic_jax.Refinement`: refine each image's latents before coding
        (real coding only; the encoding time includes it).
      orientation_lmbda: if given, code each image in the orientation of lowest
        estimated `bpp + λ·MSE` at this λ (coding/orientation.py; real coding only; the
        encoding time includes the search; rows record `orientation`).
      placement_lmbda: if given, code each image (in its orientation) at the placement
        in its padded canvas of lowest estimated `bpp + λ·MSE` at this λ
        (coding/placement.py; real coding only; the encoding time includes the search;
        rows record `placement`, [top, left]); without it images are centred.
      finished: rows measured before, by image name (a resumed run: eval_journal.py);
        those images are not coded again and their rows are taken as they are.
      on_row: called with each newly measured row, as soon as it is complete.
      post_filter: a `LoadedPostFilter` trained for these weights: the encoder applies
        it where it helps, the decoder where the stream says so (coding/codec.py; real
        coding only; rows record `post_filtered`).
      post_filter_ensemble: the encoder also tries the filter's self-ensemble (its
        mean over the eight orientations) and keeps it where it is closer still; rows
        record `post_filter_ensemble`.
      wiener_lmbda: the encoder fits a per-image Wiener filter and sends it where it
        lowers the RD cost at this λ (coding/wiener_filter.py; real coding only); rows
        record `wiener_bytes` (0 where none was sent), which `estimated_bits` includes.
      coarseness: quantise the latents with the step r**coarseness
        (entropy/coarseness.py); the λ arguments should suit it (`coarser_lmbda`).
    """
    import llic_jax
    from llic_jax.coding.codec import encode, padded_size
    from llic_jax.coding.orientation import orient
    from llic_jax.coding.placement import choose_orientation_and_placement

    if save_recon is not None:
        Path(save_recon).mkdir(parents=True, exist_ok=True)
    compiled = set()
    # two steps of refinement compile it for any number of steps (refining for the
    # post-filter's ensemble, odd steps see the image transposed: a second compilation)
    warm_up = (
        None
        if refinement is None
        else dataclasses.replace(refinement, steps=min(refinement.steps, 2))
    )
    finished = finished or {}
    rows = []
    for name, img in _progress(images, label or model.model_name, progress):
        if name in finished:
            rows.append(finished[name])
            continue
        h, w = img.shape[:2]
        shape = padded_size(model, h, w)
        if shape not in compiled:  # compile outside the timed calls
            compiled.add(shape)
            if entropy_estimation:
                llic_jax.reconstruct(model, variables, img, coarseness=coarseness)
            else:
                # the search runs the eval forward, and odd orientations code the
                # transposed shape: compile those too, only when searching
                turns = (0, 1) if orientation_lmbda is not None else (0,)
                for k in turns:
                    if orientation_lmbda is not None:
                        llic_jax.reconstruct(
                            model, variables, orient(img, k), coarseness=coarseness
                        )
                    # no Wiener filter here: it is numpy, with nothing to compile
                    blob = encode(
                        model, variables, img, estimate=True, refinement=warm_up,
                        orientation=k, post_filter=post_filter,
                        post_filter_ensemble=post_filter_ensemble,
                        coarseness=coarseness,
                    ).blob  # fmt: skip
                    llic_jax.decompress(model, variables, blob, post_filter=post_filter)
        row = {"image": name}
        if entropy_estimation:
            start = time.perf_counter()
            decoded, bits = llic_jax.reconstruct(
                model, variables, img, coarseness=coarseness
            )
            row["encoding_time"] = time.perf_counter() - start
            row["decoding_time"] = None
            row["bpp"] = float(bits) / (h * w)  # the estimate stands in for the rate
        else:
            start = time.perf_counter()
            orientation, placement = choose_orientation_and_placement(
                model, variables, img, orientation_lmbda, placement_lmbda, coarseness
            )
            if orientation_lmbda is not None:
                row["orientation"] = orientation
            if placement is not None:
                row["placement"] = list(placement)
            encoded = encode(
                model, variables, img, estimate=True, refinement=refinement,
                orientation=orientation, placement=placement, post_filter=post_filter,
                post_filter_ensemble=post_filter_ensemble, wiener_lmbda=wiener_lmbda,
                coarseness=coarseness,
            )  # fmt: skip
            row["encoding_time"] = time.perf_counter() - start
            start = time.perf_counter()
            decoded = llic_jax.decompress(
                model, variables, encoded.blob, post_filter=post_filter
            )
            row["decoding_time"] = time.perf_counter() - start
            row["bytes"] = len(encoded.blob)
            row["bpp"] = 8 * len(encoded.blob) / (h * w)
            row["bit_exact"] = bool(np.array_equal(decoded, encoded.reconstruction))
            if post_filter is not None:
                row["post_filtered"] = int(encoded.post_filtered)
            if post_filter_ensemble:
                row["post_filter_ensemble"] = int(encoded.post_filter_ensemble)
            if wiener_lmbda is not None:
                row["wiener_bytes"] = encoded.wiener_bytes
            bits = encoded.estimated_bits
        row["estimated_bits"] = float(bits)
        row["estimated_bpp"] = float(bits) / (h * w)
        row.update(_quality(img, decoded))
        rows.append(row)
        if save_recon is not None:
            _save_png(Path(save_recon) / (Path(name).stem + ".png"), decoded)
        if on_row is not None:
            on_row(row)
    return {"label": label or model.model_name, "images": rows}


def evaluate_classic(
    codec: str,
    images: Sequence[tuple[str, np.ndarray]],
    quality: int,
    subsampling: str = "420",
    progress: bool = True,
) -> dict:
    """One RD point of a classic codec at one quality setting."""
    rows = []
    for name, img in _progress(images, f"{codec} q{quality}", progress):
        h, w = img.shape[:2]
        start = time.perf_counter()
        data = classic_codecs.encode(codec, img, quality, subsampling)
        encoding_time = time.perf_counter() - start
        start = time.perf_counter()
        decoded = classic_codecs.decode(data)
        decoding_time = time.perf_counter() - start
        rows.append({
            "image": name, "bytes": len(data), "bpp": 8 * len(data) / (h * w),
            "encoding_time": encoding_time, "decoding_time": decoding_time,
            **_quality(img, decoded),
        })  # fmt: skip
    return {"label": f"quality={quality}", "images": rows}


def _save_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    from llic_jax.atomic_write import write_atomically

    write_atomically(path, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"))
