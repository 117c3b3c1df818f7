"""`llic eval`, `bench`, `bdrate`, `plot` and `export` end to end on tiny inputs."""

import json

import flax.serialization
import numpy as np
import pytest
from PIL import Image

import llic_jax
from llic_jax.cli import main
from llic_jax.rd_results import load_curve


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo):
    """Two real-photo crops: one MS-SSIM can measure (≥ 161 px), one it cannot."""
    path = tmp_path_factory.mktemp("images")
    Image.fromarray(np.ascontiguousarray(photo[:176, :192])).save(path / "a.png")
    Image.fromarray(np.ascontiguousarray(photo[200:240, 100:164])).save(path / "b.png")
    return path


@pytest.fixture(scope="module")
def weights(small_weights_file):
    return small_weights_file


def test_eval_real_bpp_is_the_size_of_the_encoded_file(tmp_path, folder, weights, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--weights", str(weights), "--data", str(folder), "--out", str(out)]
    assert main([*args, "--quiet", "--save-recon", str(tmp_path / "recon")]) == 0
    assert "decoded = encoder's reconstruction on 2/2 images" in capsys.readouterr().out
    document = json.loads(out.read_text())
    results = document["results"]
    for key in ("bpp", "estimated_bpp", "psnr-rgb", "encoding_time", "decoding_time"):
        assert len(results[key]) == 1, key
    rows = document["points"][0]["images"]
    assert [r["image"] for r in rows] == ["a.png", "b.png"]
    for row in rows:
        stream = tmp_path / "s.llic"
        assert main(["encode", str(folder / row["image"]), str(stream),
                     "--weights", str(weights)]) == 0  # fmt: skip
        h, w = np.asarray(Image.open(folder / row["image"])).shape[:2]
        assert row["bpp"] == pytest.approx(8 * stream.stat().st_size / (h * w))
        assert row["estimated_bpp"] > 0 and row["bit_exact"] is True
        assert row["estimated_bits"] == pytest.approx(row["estimated_bpp"] * h * w)
    # MS-SSIM needs 161 px: only one image has it, so the mean is left out.
    assert rows[0]["ms_ssim"] is not None and rows[1]["ms_ssim"] is None
    assert "ms-ssim-rgb" not in results
    assert sorted(p.name for p in (tmp_path / "recon" / "small").iterdir()) == [
        "a.png",
        "b.png",
    ]


@pytest.mark.parametrize("search", ["--orient", "--place"])
def test_eval_with_a_search_records_each_choice(tmp_path, folder, weights, search):
    from llic_jax.coding.placement import candidate_placements

    out = tmp_path / "r.json"
    args = ["eval", "--weights", str(weights), "--data", str(folder), "--out", str(out),
            "--quiet", search, "--lmbda", "0.01"]  # fmt: skip
    assert main(args) == 0
    document = json.loads(out.read_text())
    rows = document["points"][0]["images"]
    assert all(r["bit_exact"] for r in rows)
    if search == "--orient":
        assert all(0 <= r["orientation"] <= 7 for r in rows)
        assert "8 orientations" in document["description"]
    else:
        model, _ = llic_jax.load_weights(weights)
        for row in rows:
            h, w = np.asarray(Image.open(folder / row["image"])).shape[:2]
            assert tuple(row["placement"]) in candidate_placements(model, h, w)
        assert "placements" in document["description"]
    assert main([*args, "--entropy-estimation"]) == 1  # searches need real coding


def test_refine_lr_sets_the_step_size_and_is_checked(tmp_path, folder, weights, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--weights", str(weights), "--data", str(folder), "--out", str(out),
            "--quiet", "--lmbda", "0.01"]  # fmt: skip
    for bad, message in [(["--refine-lr", "0.05"], "give --refine"),
                         (["--refine", "1", "--refine-lr", "0"], "positive"),
                         (["--refine", "1", "--refine-lr", "nan"], "positive")]:  # fmt: skip
        assert main([*args, *bad]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and not out.exists()
    assert main([*args, "--refine", "1", "--refine-lr", "0.05"]) == 0
    document = json.loads(out.read_text())
    description = document["description"]
    assert "1 steps of stochastic Gumbel annealing, learning rate 0.05" in description
    assert all(row["bit_exact"] for row in document["points"][0]["images"])


def test_an_interrupted_eval_resumes_without_coding_its_finished_images(
    tmp_path, folder, weights, monkeypatch, capsys
):
    from llic_jax.eval_journal import EvalJournal

    out = tmp_path / "r.json"
    args = ["eval", "--weights", str(weights), "--data", str(folder), "--out", str(out),
            "--quiet"]  # fmt: skip
    record = EvalJournal.record

    def interrupted_after_the_first_image(self, index, row):
        record(self, index, row)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(EvalJournal, "record", interrupted_after_the_first_image)
        assert main(args) == 130
    assert "with --resume goes on" in capsys.readouterr().err
    assert not out.exists()
    journal = tmp_path / "r.json.partial"
    first = json.loads(journal.read_text().splitlines()[1])["row"]
    assert first["image"] == "a.png"

    assert main(args) == 1  # the finished image is not thrown away unasked
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--entropy-estimation", "--resume"]) == 1  # other settings
    assert "other settings (entropy_estimation)" in capsys.readouterr().err

    assert main([*args, "--resume"]) == 0
    assert "1 of 2 images from" in capsys.readouterr().out
    rows = json.loads(out.read_text())["points"][0]["images"]
    assert rows[0] == first  # taken from the journal, timings included: not coded again
    assert rows[1]["image"] == "b.png" and rows[1]["bit_exact"] is True
    assert not journal.exists()


def test_entropy_estimation_skips_the_coder(tmp_path, folder, weights):
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(weights), "--data", str(folder),
                 "--out", str(out), "--entropy-estimation", "--quiet"]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["points"][0]["images"]
    assert all(r["bpp"] == r["estimated_bpp"] and "bytes" not in r for r in rows)


def test_bench_bdrate_and_plot(tmp_path, folder, capsys):
    jpeg, webp = tmp_path / "jpeg.json", tmp_path / "webp.json"
    base = ["--data", str(folder), "--quiet", "--qualities", "10,30,50,70,90"]
    assert main(["bench", "jpeg", *base, "--out", str(jpeg)]) == 0
    assert main(["bench", "webp", *base, "--out", str(webp)]) == 0
    curve = load_curve(jpeg)
    assert len(curve["results"]["bpp"]) == 5
    assert curve["results"]["bpp"] == sorted(curve["results"]["bpp"])
    assert "JPEG" in curve["name"] and "4:2:0" in curve["name"]
    capsys.readouterr()
    assert main(["bdrate", str(jpeg), str(webp)]) == 0
    line = capsys.readouterr().out
    assert "BD-rate" in line and "pchip" in line
    rate = float(line.split("BD-rate ")[1].split("%")[0])
    assert main(["bdrate", str(webp), str(jpeg)]) == 0
    reverse = float(capsys.readouterr().out.split("BD-rate ")[1].split("%")[0])
    assert np.sign(rate) == -np.sign(reverse)
    png = tmp_path / "rd.png"
    assert main(["plot", str(jpeg), str(webp), "-o", str(png)]) == 0
    assert Image.open(png).size[0] > 500


def test_bdrate_on_short_curves_and_single_points(tmp_path, folder, capsys):
    short = tmp_path / "short.json"
    assert main(["bench", "jpeg", "--data", str(folder), "--quiet",
                 "--qualities", "20,80", "--out", str(short)]) == 0  # fmt: skip
    capsys.readouterr()
    # Two points: pchip gives BD figures (a curve against itself: zero), cubic refuses.
    assert main(["bdrate", str(short), str(short)]) == 0
    assert "BD-rate +0.00%" in capsys.readouterr().out
    assert main(["bdrate", str(short), str(short), "--method", "cubic"]) == 1
    err = capsys.readouterr().err
    assert "at least 4" in err and err.count("\n") == 1
    # One point (its higher-rate point alone): compared at its own rate, no BD figures.
    document = json.loads(short.read_text())
    results = document["results"]
    high = int(np.argmax(results["bpp"]))
    document["results"] = {
        k: [v[high]] for k, v in results.items() if isinstance(v, list) and len(v) == 2
    }
    single = tmp_path / "single.json"
    single.write_text(json.dumps(document))
    assert main(["bdrate", str(short), str(single)]) == 0
    out = capsys.readouterr().out
    assert "too few for BD figures" in out and "BD-rate" not in out
    assert f"{results['bpp'][high]:.4f} bpp" in out and "+0.00 dB" in out
    # An anchor of one point cannot be fitted: one line, non-zero exit.
    assert main(["bdrate", str(single), str(short)]) == 1
    assert "at least 2" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{")
    assert main(["plot", str(tmp_path / "junk.json"), "-o", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


def test_export_from_a_workdir_round_trips(tmp_path, make_small_model, photo, capsys):
    model, variables = make_small_model("mbt2018-mean")
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = {"model": llic_jax.models.model_config(model), "lmbda": 0.013}
    (workdir / "config.json").write_text(json.dumps(config))
    state = {"step": 7, "state": {"0": variables["params"], "1": {}}}
    (workdir / "state.msgpack").write_bytes(flax.serialization.msgpack_serialize(state))
    out = tmp_path / "w.safetensors"
    assert (
        main(["export", "--workdir", str(workdir), "--out", str(out), "--float16"]) == 0
    )
    loaded_model, loaded = llic_jax.load_weights(out)
    assert loaded_model == model
    img = np.ascontiguousarray(photo[:48, :40])
    blob = llic_jax.compress(loaded_model, loaded, img)
    assert llic_jax.decompress(loaded_model, loaded, blob).shape == img.shape
    capsys.readouterr()
    assert main(["export", "--workdir", str(tmp_path), "--out", str(out)]) == 1
    assert "training workdir" in capsys.readouterr().err


def test_eval_at_a_coarseness_codes_cheaper_and_says_so(
    tmp_path, folder, weights, capsys
):
    args = ["eval", "--weights", str(weights), "--data", str(folder), "--quiet"]
    own, coarser = tmp_path / "own.json", tmp_path / "coarser.json"
    assert main([*args, "--out", str(own)]) == 0
    assert main([*args, "--out", str(coarser), "--coarser", "4"]) == 0
    assert "small.safetensors, coarser by 4:" in capsys.readouterr().out
    document = json.loads(coarser.read_text())
    own_document = json.loads(own.read_text())
    assert document["description"] == own_document["description"]  # they merge
    assert document["points"][0]["label"] == "small.safetensors, coarser by 4"
    rows = document["points"][0]["images"]
    assert all(row["bit_exact"] for row in rows)
    assert sum(r["bytes"] for r in rows) < sum(
        r["bytes"] for r in own_document["points"][0]["images"]
    )
    assert main([*args, "--out", str(tmp_path / "x.json"), "--coarser", "16"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--coarser takes 0..15" in err and "\n" not in err
