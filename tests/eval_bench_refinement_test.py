"""eval/bench_refinement.py: figures per number of steps, the command, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

import llic_jax
from eval import bench_refinement


def _crop(photo):
    return np.ascontiguousarray(photo[100:164, 50:114])


def test_rows_start_from_the_analysis_latents_and_refinement_lowers_the_cost(
    photo, make_small_model
):
    model, variables = make_small_model("mbt2018-mean")  # the cheapest to compile
    img = _crop(photo)
    rows = bench_refinement.measure(
        model, variables, [img], 0.01, [4], learning_rate=2e-2
    )
    assert [row["steps"] for row in rows] == [0, 4]
    baseline, refined = rows
    assert baseline["rd_cost_change_mean"] == baseline["rd_cost_change_least"] == 0
    _, estimated_bits = llic_jax.reconstruct(model, variables, img)
    # Continuous scales against the coder's table: close, not equal.
    assert baseline["bpp"] == pytest.approx(estimated_bits / img[..., 0].size, rel=0.05)
    assert refined["rd_cost_change_mean"] < 0
    assert refined["rd_cost_change_least"] == refined["rd_cost_change_mean"]
    assert refined["seconds_per_image"] > 0 and refined["images"] == 1


def test_the_command_prints_a_table_and_writes_json(
    small_weights_file, photo, tmp_path, capsys
):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (top, left) in {"a.png": (0, 0), "b.png": (200, 300)}.items():
        Image.fromarray(photo[top : top + 48, left : left + 64]).save(folder / name)
    out = tmp_path / "refine.json"
    argv = ["--weights", str(small_weights_file), "--data", str(folder), "--lmbda",
            "0.01", "--steps", "2", "--limit", "1", "--json", str(out)]  # fmt: skip
    assert bench_refinement.main(argv) == 0
    printed = capsys.readouterr().out
    assert "small.safetensors (mbt2018-mean, λ 0.01), 1 images" in printed
    report = json.loads(out.read_text())
    (model,) = report["models"].values()
    assert [row["steps"] for row in model["rows"]] == [0, 2]
    assert all(row["images"] == 1 for row in model["rows"])
    assert f"{model['rows'][1]['bpp']:.4f}" in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "no λ"),
        (["--lmbda", "0.01", "--steps", "0"], "must be positive"),
        (["--lmbda", "0.01", "--steps", "a,b"], "not integers"),
        (["--lmbda", "0.01", "--limit", "0"], "--limit"),
        (["--lmbda", "0.01", "--learning-rate", "-1"], "learning rate"),
    ],
)
def test_bad_input_exits_with_one_line(
    extra, message, small_weights_file, photo, tmp_path, capsys
):
    Image.fromarray(photo[:32, :32]).save(tmp_path / "a.png")
    argv = ["--weights", str(small_weights_file), "--data", str(tmp_path), *extra]
    with pytest.raises(SystemExit) as error:
        bench_refinement.main(argv)
    assert error.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last


def test_missing_data_folder_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench_refinement.main(["--data", "no/such/folder"])
    assert "no such directory" in capsys.readouterr().err
