"""RD plots: PSNR–bpp and MS-SSIM (dB)–bpp side by side, from any results files.

Our curves are drawn solid with markers in strong colours, reference curves (e.g.
published points in CompressAI's schema) thin, dashed and in light colours, so that
measured and quoted numbers are never confused. Each curve keeps its colour in both
panels; one legend on the right names them all. Curves without MS-SSIM are left out of
that panel. `max_bpp` crops the rate axis (high-rate classic-codec points would
otherwise squeeze the range learned codecs are compared in). The panels give the legend
the width it needs, so long curve names never cover a curve; a legend too long for the
panels' height or too wide for their side grows the figure instead, the panels keeping
their size at its top.
"""

import os
import textwrap
from pathlib import Path

__all__ = ["plot_curves", "rd_figure"]

# Names longer than this wrap onto more legend lines; a legend taller than the figure
# gets up to three columns; the panels keep at least 1 - LEGEND_MAX_WIDTH of the width.
LEGEND_WRAP_CHARS = 48
LEGEND_MAX_WIDTH = 0.4
FIGURE_SIZE = (14.0, 5.5)  # inches, legend included unless it needs more


def plot_curves(
    curves: list[dict],
    out: str | os.PathLike,
    references: list[dict] = (),
    title: str = "",
    max_bpp: float | None = 2.0,
) -> None:
    """Writes the two RD panels to `out` (format from its suffix; temp file + rename)."""
    from llic_jax.atomic_write import write_atomically

    fig = rd_figure(curves, references, title, max_bpp)
    import matplotlib.pyplot as plt  # after rd_figure has chosen the Agg backend

    suffix = Path(out).suffix.lstrip(".") or "png"
    write_atomically(out, lambda tmp: fig.savefig(tmp, dpi=120, format=suffix))
    plt.close(fig)


def rd_figure(
    curves: list[dict],
    references: list[dict] = (),
    title: str = "",
    max_bpp: float | None = 2.0,
):
    """The two RD panels as a matplotlib figure (Agg backend), legend on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strong, light = plt.get_cmap("tab10"), plt.get_cmap("tab20")
    styles = [
        (f"ref: {curve['name']}", curve,
         dict(ls="--", lw=1, alpha=0.8, color=light(2 * (i % 10) + 1)))
        for i, curve in enumerate(references)
    ] + [
        # tab10 repeats after ten curves: the marker and line tell the next ten apart.
        (curve["name"], curve, dict(ls=("-", "-.", ":")[i // 10 % 3],
                                    marker="os^"[i // 10 % 3], lw=2, ms=4,
                                    color=strong(i % 10)))
        for i, curve in enumerate(curves)
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=FIGURE_SIZE)
    panels = (("psnr-rgb", "PSNR (dB)"), ("ms-ssim-db-rgb", "MS-SSIM (dB)"))
    handles = {}
    for ax, (key, label) in zip(axes, panels, strict=True):
        for index, (name, curve, style) in enumerate(styles):
            r = curve["results"]
            if key in r:
                points = sorted(
                    (b, q) for b, q in zip(r["bpp"], r[key], strict=True)
                    if max_bpp is None or b <= max_bpp
                )  # fmt: skip
                if points:
                    bpp, quality = zip(*points, strict=True)
                    (line,) = ax.plot(bpp, quality, **style)
                    handles.setdefault(index, (line, name))
        ax.set_xlabel("bpp (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if not ax.get_lines():
            ax.text(0.5, 0.5, "no curve has this metric", ha="center",
                    transform=ax.transAxes)  # fmt: skip
    if title:
        fig.suptitle(title)
    legend_width = 0.0  # inches
    if handles:
        lines, names = zip(*(handles[i] for i in sorted(handles)), strict=True)
        names = [textwrap.fill(name, LEGEND_WRAP_CHARS) for name in names]
        for columns in range(1, 4):  # more columns until the legend fits the height
            legend = fig.legend(lines, names, loc="center right", fontsize=7,
                                ncols=columns)  # fmt: skip
            fig.canvas.draw()  # the legend's size is known only once it is laid out
            box = legend.get_window_extent()
            if box.height <= fig.bbox.height or columns == 3:
                break
            legend.remove()
        legend_width = box.width / fig.dpi + 0.15
        legend_height = box.height / fig.dpi + 0.2
        width, height = FIGURE_SIZE
        panels_width = width * (1 - LEGEND_MAX_WIDTH)
        if legend_width > width - panels_width or legend_height > height:
            # The legend's size in inches does not depend on the figure's: grow the
            # figure around it rather than shrink the panels under it.
            fig.set_size_inches(
                max(width, panels_width + legend_width), max(height, legend_height)
            )
    width, height = fig.get_size_inches()
    panels_top = FIGURE_SIZE[1] / height  # the panels keep their height, at the top
    fig.tight_layout(rect=(0, 1 - panels_top, 1 - legend_width / width, 1))
    return fig
