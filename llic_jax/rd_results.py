"""Rate–distortion results as JSON, in CompressAI's schema, with per-image detail.

A results file holds one curve:

    {"name": "mbt2018-mean", "description": "...conventions...",
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "ms-ssim-db-rgb": [...], "encoding_time": [...], "decoding_time": [...],
                 "estimated_bpp": [...]},
     "points": [{"label": "q4.safetensors", "images": [{"image": "kodim01.png", ...}]}]}

`results` is exactly what CompressAI's `eval_model` and its reference curves hold (one
entry per RD point, points sorted by rate), so files of both projects overlay; `points`
adds the per-image numbers behind each entry. Conventions (DESIGN.md §5): bpp counts
the whole file, header included, over the original H×W; PSNR and MS-SSIM are per image
on 8-bit RGB, then averaged; MS-SSIM dB = −10·log10(1 − mean MS-SSIM); times are the
mean seconds per image, JIT compilation excluded.
"""

import json
import os
from pathlib import Path

import numpy as np

from llic_jax.atomic_write import write_atomically
from llic_jax.metrics import ms_ssim_db

__all__ = ["curve", "load_curve", "merge_curves", "summarise_point", "write_json"]

# Per-image keys averaged into each point, and the `results` key they feed.
_AVERAGED = {
    "bpp": "bpp",
    "estimated_bpp": "estimated_bpp",
    "psnr": "psnr-rgb",
    "ms_ssim": "ms-ssim-rgb",
    "encoding_time": "encoding_time",
    "decoding_time": "decoding_time",
}


def summarise_point(images: list[dict]) -> dict:
    """Means over the per-image rows of one RD point, under the `results` keys."""
    summary = {}
    for key, result_key in _AVERAGED.items():
        values = [row.get(key) for row in images]
        # A mean over a subset would not be comparable: all images or nothing.
        if values and all(v is not None for v in values):
            summary[result_key] = float(np.mean(values))
    if "ms-ssim-rgb" in summary:
        summary["ms-ssim-db-rgb"] = ms_ssim_db(summary["ms-ssim-rgb"])
    return summary


def curve(name: str, description: str, points: list[dict]) -> dict:
    """One results document from points `{"label": str, "images": [row, ...]}`."""
    summaries = [summarise_point(p["images"]) for p in points]
    order = sorted(range(len(points)), key=lambda i: summaries[i].get("bpp", 0.0))
    keys = [k for k in summaries[0] if all(k in s for s in summaries)] if points else []
    return {
        "name": name,
        "description": description,
        "results": {k: [summaries[i][k] for i in order] for k in keys},
        "points": [points[i] for i in order],
    }


def merge_curves(name: str, documents: list[dict]) -> dict:
    """One curve from the points of several results documents, sorted by rate.

    For an evaluation split into runs (one weights file each, on one machine after
    another or on several at once). The runs must have measured the same thing: equal
    descriptions (they state the encoder's settings and the data) and, where they keep
    per-image rows, the same photos in every point, so that each mean is over the same
    set. Files without per-image rows (CompressAI's) merge their `results` entries.

    Raises:
      ValueError: no documents, different descriptions, rows for some files but not
        others, points over different photos, or one label twice.
    """
    if not documents:
        raise ValueError("nothing to merge")
    names = [d.get("name", "?") for d in documents]
    descriptions = {d.get("description", "") for d in documents}
    if len(descriptions) > 1:
        raise ValueError(f"{', '.join(names)}: different descriptions (settings or "
                         "data), not points of one curve")  # fmt: skip
    with_rows = [bool(d.get("points")) for d in documents]
    if any(with_rows) and not all(with_rows):
        lacking = [n for n, rows in zip(names, with_rows, strict=True) if not rows]
        raise ValueError(f"{', '.join(lacking)}: no per-image rows, unlike the others")
    (description,) = descriptions
    if not all(with_rows):
        return _merge_means(name, description, [d["results"] for d in documents])
    points = [point for d in documents for point in d["points"]]
    labels = [point.get("label") for point in points]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"point {twice[0]!r} appears twice")
    photos = [sorted(row["image"] for row in point["images"]) for point in points]
    for label, these in zip(labels, photos, strict=True):
        if these != photos[0]:
            raise ValueError(f"point {label!r} holds other photos than {labels[0]!r} "
                             f"({len(these)} vs {len(photos[0])})")  # fmt: skip
    return curve(name, description, points)


def _merge_means(name: str, description: str, results: list[dict]) -> dict:
    """`merge_curves` for documents that hold only means: their entries, by rate."""
    keys = [k for k in results[0] if all(isinstance(r.get(k), list) for r in results)]
    entries = [{k: r[k][i] for k in keys} for r in results for i in range(len(r["bpp"]))]
    entries.sort(key=lambda entry: entry["bpp"])
    return {
        "name": name,
        "description": description,
        "results": {k: [entry[k] for entry in entries] for k in keys},
    }


def load_curve(path: str | os.PathLike) -> dict:
    """Reads a results file (ours or CompressAI's) and checks its shape.

    Raises:
      ValueError: unreadable JSON, no `results`, no `bpp`, or lists of unequal length.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read RD results ({e})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not isinstance(results.get("bpp"), list):
        raise ValueError(f"{path}: not an RD results file (no results.bpp list)")
    lengths = {k: len(v) for k, v in results.items() if isinstance(v, list)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{path}: results lists have different lengths {lengths}")
    if "ms-ssim-db-rgb" not in results and "ms-ssim-rgb" in results:
        results["ms-ssim-db-rgb"] = [ms_ssim_db(v) for v in results["ms-ssim-rgb"]]
    data.setdefault("name", Path(path).stem)
    return data


def write_json(path: str | os.PathLike, document: dict) -> None:
    """Writes `document` as indented JSON via a temporary file and a rename."""
    text = json.dumps(document, indent=1) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))
