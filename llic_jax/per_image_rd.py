"""Two RD curves compared photo by photo: where a codec wins and where it loses.

A curve's mean BD-rate hides how it spreads over the photos: session 26 found the
compact LLIC level with AVIF on smooth Kodak photos and 2–3.6 dB behind on those of
regular fine structure (docs/results-history.md "Session 26"). Results files of
`llic eval` and `llic bench` keep every image's row under `points` (rd_results.py), so
each photo has its own RD curve in both files, and the usual figures apply to it:
BD-rate and BD-quality of the test photo's curve against the anchor photo's
(bjontegaard.py), and at each test point the quality difference to the anchor photo's
fit at the same rate.

Conventions: quality is PSNR (dB) or MS-SSIM in dB (−10·log10(1 − MS-SSIM), per image),
rate is the image's own bpp; photos are matched by their `image` name; a photo must be in
every point of both curves. A figure that cannot be formed (curves that do not overlap,
a rate outside the anchor photo's range) is None.
"""

from __future__ import annotations

import math

import numpy as np

from llic_jax import bjontegaard
from llic_jax.metrics import ms_ssim_db

__all__ = ["METRICS", "per_image_curves", "compare_per_image"]

METRICS = ("psnr", "ms-ssim")


def _quality(row: dict, metric: str) -> float:
    if metric == "psnr":
        return float(row["psnr"])
    return float(ms_ssim_db(row["ms_ssim"]))


def per_image_curves(document: dict, metric: str, name: str) -> dict[str, tuple]:
    """{image: (bpp list, quality list)} over the points of one results document.

    Raises:
      ValueError: no per-image rows, a photo missing from some point, or rows without
        the metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    points = document.get("points")
    rows_per_point = [p.get("images") if isinstance(p, dict) else None
                      for p in points or []]  # fmt: skip
    if not rows_per_point or not all(isinstance(r, list) for r in rows_per_point):
        raise ValueError(f"{name}: no per-image rows (only files of `llic eval` and "
                         "`llic bench` have them)")  # fmt: skip
    key = "psnr" if metric == "psnr" else "ms_ssim"
    names = [[row.get("image") for row in rows] for rows in rows_per_point]
    common = set(names[0]).intersection(*names[1:])
    if set(names[0]).union(*names[1:]) != common:
        raise ValueError(f"{name}: its points do not all hold the same photos")
    curves = {image: ([], []) for image in sorted(common)}
    for rows in rows_per_point:
        for row in rows:
            if row.get(key) is None or row.get("bpp") is None:
                raise ValueError(f"{name}: {row['image']} has no bpp or {key}")
            rates, qualities = curves[row["image"]]
            rates.append(float(row["bpp"]))
            qualities.append(_quality(row, metric))
    return curves


def _bd(figure, a_rate, a_q, t_rate, t_q, method) -> float | None:
    """`figure` (bd_rate or bd_psnr) of one photo's curves; None if it cannot be formed."""
    try:
        value = figure(a_rate, a_q, t_rate, t_q, method)
    except ValueError:  # curves that do not overlap, or too few distinct points
        return None
    return value if math.isfinite(value) else None


def compare_per_image(
    anchor: dict, test: dict, metric: str = "psnr", method: str = "pchip"
) -> list[dict]:
    """One row per photo in both curves, worst for `test` first.

    Each row: `image`; `bd_rate` (%) and `bd_quality` (dB) of the test photo's curve
    against the anchor photo's; `gaps`, the test quality minus the anchor's fit at each
    test point's rate (in the test's point order, rate ascending); `mean_gap`, their mean
    over the points where the anchor's fit is defined. Rows are sorted by `mean_gap`
    (photos without one last).

    Raises:
      ValueError: as `per_image_curves`, or no photo in both curves.
    """
    a_curves = per_image_curves(anchor, metric, anchor.get("name", "anchor"))
    t_curves = per_image_curves(test, metric, test.get("name", "test"))
    shared = sorted(set(a_curves) & set(t_curves))
    if not shared:
        raise ValueError("the two curves have no photo in common")
    rows = []
    for image in shared:
        (a_rate, a_q), (t_rate, t_q) = a_curves[image], t_curves[image]
        try:
            fitted = bjontegaard.quality_at_rate(a_rate, a_q, t_rate, method)
        except ValueError:
            fitted = np.full(len(t_rate), np.nan)
        order = np.argsort(t_rate)
        gaps = [None if np.isnan(fitted[i]) else float(t_q[i] - fitted[i]) for i in order]
        defined = [g for g in gaps if g is not None]
        curves = (a_rate, a_q, t_rate, t_q, method)
        rows.append({
            "image": image,
            "bd_rate": _bd(bjontegaard.bd_rate, *curves),
            "bd_quality": _bd(bjontegaard.bd_psnr, *curves),
            "gaps": gaps,
            "mean_gap": float(np.mean(defined)) if defined else None,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["mean_gap"] is None, r["mean_gap"] or 0.0))
