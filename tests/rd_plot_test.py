"""RD plot layout: the legend sits beside the panels, whatever the curve names."""

import pytest

from llic_jax.rd_plot import LEGEND_WRAP_CHARS, plot_curves, rd_figure


def _curve(name, offset, ms_ssim=True):
    results = {"bpp": [0.2, 0.3, 0.4], "psnr-rgb": [27 + offset, 28 + offset, 29]}
    if ms_ssim:
        results["ms-ssim-db-rgb"] = [11 + offset, 12 + offset, 13]
    return {"name": name, "results": results}


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("name_length", [4, 90, 200])
def test_legend_never_covers_a_panel(name_length):
    curves = [_curve(f"{i}" + "x" * name_length, 0.1 * i) for i in range(6)]
    fig = rd_figure(curves, [_curve("published" + "y" * name_length, -1)])
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert box.x1 <= fig.bbox.x1 + 1  # inside the figure
    for ax in fig.axes:
        assert not _overlaps(box, ax.get_tightbbox())
    texts = [text.get_text() for text in legend.get_texts()]
    assert len(texts) == 7
    assert all(
        len(line) <= LEGEND_WRAP_CHARS for text in texts for line in text.splitlines()
    )


def test_a_long_legend_takes_columns_and_stays_inside_the_figure():
    curves = [_curve(f"curve {i} " + "z" * 60, 0.05 * i) for i in range(30)]
    fig = rd_figure(curves)
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    columns = {round(text.get_window_extent().x0) for text in legend.get_texts()}
    assert len(columns) > 1
    assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1
    for ax in fig.axes:
        assert not _overlaps(box, ax.get_tightbbox())


def test_curve_without_ms_ssim_leaves_that_panel_to_the_others(tmp_path):
    fig = rd_figure([_curve("psnr only", 0, ms_ssim=False)])
    psnr_panel, ms_ssim_panel = fig.axes
    assert len(psnr_panel.get_lines()) == 1
    assert not ms_ssim_panel.get_lines()
    assert "no curve" in ms_ssim_panel.texts[0].get_text()
    out = tmp_path / "rd.png"
    plot_curves([_curve("a", 0), _curve("b", 0.5)], out, max_bpp=0.35)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temp file


def test_a_legend_longer_than_three_columns_grows_the_figure():
    # docs/rd_kodak24.png: ~40 curves and ~20 published ones, most names wrapped
    curves = [_curve(f"curve {i} " + "z" * 100, 0.02 * i) for i in range(40)]
    references = [_curve(f"published {i}", -1 - 0.1 * i) for i in range(22)]
    fig = rd_figure(curves, references)
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert fig.get_size_inches()[1] > 5.5  # taller than the panels need
    assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1
    assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1
    for ax in fig.axes:
        assert not _overlaps(box, ax.get_tightbbox())
        assert ax.get_window_extent().height / fig.dpi > 3  # panels not squashed
