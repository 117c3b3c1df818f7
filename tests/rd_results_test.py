import json

import numpy as np
import pytest

from llic_jax import rd_results
from llic_jax.cli import main

PHOTOS = ("a.png", "b.png")


def _run(label, bpp, psnr, photos=PHOTOS, description="refined, kodak24"):
    """The document one `llic eval` run over one weights file would write."""
    rows = [{"image": photo, "bpp": bpp + 0.01 * i, "estimated_bpp": bpp,
             "psnr": psnr + i, "ms_ssim": 0.9} for i, photo in enumerate(photos)]  # fmt: skip
    return rd_results.curve(label, description, [{"label": label, "images": rows}])


def test_merged_points_are_sorted_by_rate_with_their_own_means():
    runs = [_run("q4", 0.37, 29.8), _run("q2", 0.20, 28.6), _run("q3", 0.28, 29.2)]
    merged = rd_results.merge_curves("curve", runs)
    assert merged["name"] == "curve" and merged["description"] == "refined, kodak24"
    assert [p["label"] for p in merged["points"]] == ["q2", "q3", "q4"]
    np.testing.assert_allclose(merged["results"]["bpp"], [0.205, 0.285, 0.375])
    np.testing.assert_allclose(merged["results"]["psnr-rgb"], [29.1, 29.7, 30.3])
    assert merged == rd_results.curve("curve", "refined, kodak24",
                                      [p for r in runs for p in r["points"]])  # fmt: skip


def test_runs_that_did_not_measure_the_same_thing_are_refused():
    q2 = _run("q2", 0.20, 28.6)
    with pytest.raises(ValueError, match="different descriptions"):
        rd_results.merge_curves("c", [q2, _run("q3", 0.28, 29.2, description="default")])
    with pytest.raises(ValueError, match="other photos"):
        rd_results.merge_curves("c", [q2, _run("q3", 0.28, 29.2, photos=("a.png",))])
    with pytest.raises(ValueError, match="appears twice"):
        rd_results.merge_curves("c", [q2, _run("q2", 0.21, 28.7)])
    means_only = {"name": "mbt", "description": q2["description"],
                  "results": {"bpp": [0.3], "psnr-rgb": [30.0]}}  # fmt: skip
    with pytest.raises(ValueError, match="mbt: no per-image rows"):
        rd_results.merge_curves("c", [q2, means_only])
    with pytest.raises(ValueError, match="nothing to merge"):
        rd_results.merge_curves("c", [])


def test_files_of_means_only_merge_their_entries():
    high = {"name": "a", "results": {"bpp": [0.5, 0.9], "psnr-rgb": [31.0, 33.0]}}
    low = {
        "name": "b",
        "results": {"bpp": [0.2], "psnr-rgb": [28.0], "ms-ssim-rgb": [0.9]},
    }
    merged = rd_results.merge_curves("c", [high, low])
    assert merged["results"] == {"bpp": [0.2, 0.5, 0.9], "psnr-rgb": [28.0, 31.0, 33.0]}


def test_merge_command_writes_one_curve_and_refuses_bad_input(tmp_path, capsys):
    paths = []
    for label, bpp, psnr in (("q3", 0.28, 29.2), ("q2", 0.20, 28.6)):
        paths.append(str(tmp_path / f"{label}.json"))
        rd_results.write_json(paths[-1], _run(label, bpp, psnr))
    out = tmp_path / "curve.json"
    assert main(["merge", *paths, "--out", str(out), "--name", "two"]) == 0
    assert "2 points" in capsys.readouterr().out
    merged = rd_results.load_curve(out)
    assert merged["name"] == "two" and merged["results"]["bpp"] == pytest.approx(
        [0.205, 0.285]
    )

    other = tmp_path / "other.json"
    rd_results.write_json(other, _run("q4", 0.37, 29.8, photos=("c.png", "d.png")))
    before = out.read_text()
    assert main(["merge", paths[0], str(other), "--out", str(out), "--name", "x"]) == 1
    assert "other photos" in capsys.readouterr().err
    assert out.read_text() == before  # a refused merge leaves the old file as it was
    (tmp_path / "broken.json").write_text("{")
    assert (
        main(["merge", str(tmp_path / "broken.json"), "--out", str(out), "--name", "x"])
        == 1
    )
    assert "cannot read RD results" in capsys.readouterr().err
    assert json.loads(out.read_text())["name"] == "two"
