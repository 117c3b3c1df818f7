"""RD plots: PSNR–bpp and MS-SSIM (dB)–bpp side by side, from any results files.

Our curves are drawn solid with markers, reference curves (e.g. published points in
CompressAI's schema) thin and dashed, so that measured and quoted numbers are never
confused. Curves without MS-SSIM are left out of that panel.
"""

import os
from pathlib import Path

__all__ = ["plot_curves"]


def plot_curves(
    curves: list[dict],
    out: str | os.PathLike,
    references: list[dict] = (),
    title: str = "",
) -> None:
    """Writes a PNG with the two RD panels (written to a temporary file, then renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llic_jax.atomic_write import write_atomically

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    panels = (("psnr-rgb", "PSNR (dB)"), ("ms-ssim-db-rgb", "MS-SSIM (dB)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for curve in references:
            r = curve["results"]
            if key in r:
                ax.plot(r["bpp"], r[key], "--", lw=1, alpha=0.7, label=curve["name"])
        for curve in curves:
            r = curve["results"]
            if key in r:
                ax.plot(r["bpp"], r[key], "o-", lw=2, ms=4, label=curve["name"])
        ax.set_xlabel("bpp (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no curve has this metric", ha="center",
                    transform=ax.transAxes)  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    suffix = Path(out).suffix.lstrip(".") or "png"
    write_atomically(out, lambda tmp: fig.savefig(tmp, dpi=120, format=suffix))
    plt.close(fig)
