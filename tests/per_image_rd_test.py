import numpy as np
import pytest

from llic_jax import rd_results
from llic_jax.cli import main
from llic_jax.metrics import ms_ssim_db
from llic_jax.per_image_rd import compare_per_image, per_image_curves

RATES = [0.12, 0.2, 0.31, 0.46, 0.66]


def _document(name, photos):
    """A results document from {photo: [(bpp, psnr, ms_ssim), ...]}, one point per index."""
    points = []
    for i in range(len(next(iter(photos.values())))):
        rows = [{"image": photo, "bpp": rd[i][0], "psnr": rd[i][1], "ms_ssim": rd[i][2]}
                for photo, rd in photos.items()]  # fmt: skip
        points.append({"label": f"q{i}", "images": rows})
    return rd_results.curve(name, "synthetic", points)


def _photo(offset_db, rates=RATES, scale=1.0):
    return [(r * scale, 30 + 5 * np.log(r) + offset_db, 1 - 0.1 * r) for r in rates]


ANCHOR = _document("anchor", {"a.png": _photo(0), "b.png": _photo(0)})


def test_each_photo_gets_its_own_gap_and_the_worst_comes_first():
    test = _document("test", {"a.png": _photo(+0.5, RATES[1:4]),
                              "b.png": _photo(-1.0, RATES[1:4])})  # fmt: skip
    rows = compare_per_image(ANCHOR, test)
    assert [r["image"] for r in rows] == ["b.png", "a.png"]
    b, a = rows
    np.testing.assert_allclose(a["gaps"], [0.5] * 3, atol=1e-9)
    np.testing.assert_allclose(b["gaps"], [-1.0] * 3, atol=1e-9)
    assert a["bd_quality"] == pytest.approx(0.5) and b["bd_quality"] == pytest.approx(-1)
    assert a["bd_rate"] < 0 < b["bd_rate"]
    assert a["mean_gap"] == pytest.approx(0.5)


def test_rates_outside_the_anchor_photos_have_no_gap():
    test = _document("test", {"a.png": _photo(0, [0.05, 0.2, 0.3])})
    (row,) = compare_per_image(ANCHOR, test)
    assert row["gaps"][0] is None
    np.testing.assert_allclose(row["gaps"][1:], [0, 0], atol=1e-9)
    assert row["mean_gap"] == pytest.approx(0, abs=1e-9)


def test_ms_ssim_is_compared_in_db_per_photo():
    curves = per_image_curves(ANCHOR, "ms-ssim", "anchor")
    rates, qualities = curves["a.png"]
    assert rates == RATES
    np.testing.assert_allclose(qualities, [ms_ssim_db(1 - 0.1 * r) for r in RATES])


def test_documents_that_cannot_be_compared_are_refused():
    with pytest.raises(ValueError, match="no per-image rows"):
        compare_per_image({"name": "x", "results": {"bpp": [1]}}, ANCHOR)
    ragged = _document("ragged", {"a.png": _photo(0)})
    ragged["points"][0]["images"].append({"image": "c.png", "bpp": 0.1, "psnr": 20})
    with pytest.raises(ValueError, match="same photos"):
        compare_per_image(ANCHOR, ragged)
    with pytest.raises(ValueError, match="no photo in common"):
        compare_per_image(ANCHOR, _document("other", {"z.png": _photo(0)}))
    with pytest.raises(ValueError, match="metric"):
        compare_per_image(ANCHOR, ANCHOR, metric="ssim")


def test_bdrate_prints_the_per_image_table(tmp_path, capsys):
    anchor, test = tmp_path / "anchor.json", tmp_path / "test.json"
    rd_results.write_json(anchor, ANCHOR)
    rd_results.write_json(test, _document("test", {"a.png": _photo(+0.5, RATES[1:4]),
                                                   "b.png": _photo(-1.0, RATES[1:4])}))  # fmt: skip
    assert main(["bdrate", str(anchor), str(test), "--per-image"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("per image"))
    assert (
        lines[start + 1].split()[0] == "b.png" and lines[start + 2].split()[0] == "a.png"
    )
    assert lines[start + 1].split()[-1] == "-1.00"
    reference = tmp_path / "reference.json"  # CompressAI's schema: no per-image rows
    reference.write_text(
        '{"name": "r", "results": {"bpp": [0.2, 0.4], "psnr-rgb": [22, 25]}}'
    )
    assert main(["bdrate", str(anchor), str(reference)]) == 0  # the means still compare
    capsys.readouterr()
    assert main(["bdrate", str(anchor), str(reference), "--per-image"]) == 1
    out, err = capsys.readouterr()
    assert "no per-image rows" in err and out == ""
