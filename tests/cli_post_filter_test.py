"""`llic encode/decode/eval` with a post-filter file."""

import itertools

import jax
import numpy as np
import pytest
from PIL import Image

import llic_jax
from llic_jax.cli import main
from llic_jax.coding import codec
from llic_jax.layers.post_filter import PostFilter
from llic_jax.post_filter_weights import load_post_filter, save_post_filter


@pytest.fixture
def png(tmp_path, photo):
    path = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[:40, :56])).save(path)
    return path


def _filter_file(path, fingerprint):
    module = PostFilter(width=8, blocks=1)
    params = module.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))["params"]
    save_post_filter(path, module, jax.tree.map(lambda p: p + 0.01, params), fingerprint)
    return path


@pytest.fixture
def filter_file(tmp_path, small_weights_file):
    variables = llic_jax.load_weights(small_weights_file)[1]
    return _filter_file(tmp_path / "f.safetensors", codec.fingerprint(variables))


def test_a_post_filtered_stream_decodes_with_its_filter_only(
    tmp_path, png, small_weights_file, filter_file, capsys, monkeypatch
):
    # An untrained filter rarely helps: make the encoder's comparison prefer it, so
    # that the flag is set (the comparison itself: tests/coding/post_filter_coding_test.py).
    preference = itertools.cycle([0, 1])  # filtered first, then unfiltered
    monkeypatch.setattr(codec, "_sse", lambda *_: next(preference))
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    weights = ["--weights", str(small_weights_file)]
    assert main(["encode", str(png), str(stream), *weights,
                 "--post-filter", str(filter_file)]) == 0  # fmt: skip
    assert "post-filtered" in capsys.readouterr().out
    assert main(["decode", str(stream), str(out), *weights]) == 1
    err = capsys.readouterr().err
    assert "needs the post-filter" in err and not out.exists()
    assert main(["decode", str(stream), str(out), *weights,
                 "--post-filter", str(filter_file)]) == 0  # fmt: skip
    model, variables = llic_jax.load_weights(small_weights_file)
    expected = llic_jax.decompress(
        model, variables, stream.read_bytes(), post_filter=load_post_filter(filter_file)
    )
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    unfiltered = llic_jax.decompress(
        model, variables, llic_jax.compress(model, variables, np.asarray(Image.open(png)))
    )
    assert not np.array_equal(expected, unfiltered)


def test_filters_of_other_weights_or_other_files_are_refused(
    tmp_path, png, small_weights_file, capsys
):
    stream = tmp_path / "x.llic"
    stranger = _filter_file(tmp_path / "other.safetensors", b"\1" * 8)
    weights = ["--weights", str(small_weights_file)]
    assert main(["encode", str(png), str(stream), *weights,
                 "--post-filter", str(stranger)]) == 1  # fmt: skip
    assert "trained for other weights" in capsys.readouterr().err
    assert main(["encode", str(png), str(stream), *weights,
                 "--post-filter", str(small_weights_file)]) == 1  # fmt: skip
    assert "not a post-filter file" in capsys.readouterr().err
    assert not stream.exists()


def test_eval_needs_one_filter_per_weights_file(
    tmp_path, png, small_weights_file, filter_file, capsys
):
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(small_weights_file), str(small_weights_file),
                 "--data", str(png.parent), "--out", str(out),
                 "--post-filter", str(filter_file)]) == 1  # fmt: skip
    assert "one file per weights file" in capsys.readouterr().err and not out.exists()


def test_eval_records_where_the_filter_was_used(
    tmp_path, png, small_weights_file, filter_file, capsys
):
    import json

    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(small_weights_file), "--data", str(png.parent),
                 "--out", str(out), "--post-filter", str(filter_file), "--quiet"]) == 0  # fmt: skip
    assert "post-filtered: " in capsys.readouterr().out
    document = json.loads(out.read_text())
    (row,) = document["points"][0]["images"]
    assert row["post_filtered"] in (0, 1) and row["bit_exact"]
    assert "post-filter" in document["description"]


def test_the_eval_journal_keys_on_the_filter_and_only_when_there_is_one(
    tmp_path, photo, small_weights_file, filter_file, monkeypatch, capsys
):
    import json

    from llic_jax.eval_journal import EvalJournal

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, top in (("a.png", 0), ("b.png", 100)):
        Image.fromarray(np.ascontiguousarray(photo[top : top + 24, :32])).save(
            folder / name
        )
    out = tmp_path / "r.json"
    args = ["eval", "--weights", str(small_weights_file), "--data", str(folder),
            "--out", str(out), "--quiet"]  # fmt: skip
    record = EvalJournal.record

    def interrupted_after_the_first_image(self, index, row):
        record(self, index, row)
        raise KeyboardInterrupt

    journal = tmp_path / "r.json.partial"
    for extra in (["--no-post-filter"], ["--post-filter", str(filter_file)]):
        journal.unlink(missing_ok=True)
        with monkeypatch.context() as patch:
            patch.setattr(EvalJournal, "record", interrupted_after_the_first_image)
            assert main([*args, *extra]) == 130
        settings = json.loads(journal.read_text().splitlines()[0])["settings"]
        # Without a filter the settings are those of versions before it (old journals
        # still resume); with one they name its digest.
        assert ("post_filter" in settings) == (extra[0] == "--post-filter")
    capsys.readouterr()
    assert main([*args, "--no-post-filter", "--resume"]) == 1
    assert "other settings (post_filter)" in capsys.readouterr().err
    assert main([*args, "--post-filter", str(filter_file), "--resume"]) == 0
    assert "1 of 2 images from" in capsys.readouterr().out


def test_the_filter_ensemble_needs_a_filter_and_real_coding(
    tmp_path, png, small_weights_file, capsys
):
    stream, out = tmp_path / "x.llic", tmp_path / "r.json"
    weights = ["--weights", str(small_weights_file)]
    # the small test weights have no bundled filter
    assert main(["encode", str(png), str(stream), *weights, "--filter-ensemble"]) == 1
    assert "needs a post-filter" in capsys.readouterr().err and not stream.exists()
    for extra in (["--no-post-filter"], ["--entropy-estimation"], []):
        assert main(["eval", *weights, "--data", str(png.parent), "--out", str(out),
                     "--filter-ensemble", "--quiet", *extra]) == 1  # fmt: skip
        assert "--filter-ensemble needs" in capsys.readouterr().err
        assert not out.exists()


def test_eval_with_the_filter_ensemble_records_it_per_image(
    tmp_path, png, small_weights_file, filter_file, capsys, monkeypatch
):
    import json

    preference = itertools.cycle([1, 0, 0, 1])  # the ensemble wins (see above)
    monkeypatch.setattr(codec, "_sse", lambda *_: next(preference))
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(small_weights_file), "--data", str(png.parent),
                 "--out", str(out), "--post-filter", str(filter_file), "--quiet",
                 "--filter-ensemble"]) == 0  # fmt: skip
    assert "(1 by its self-ensemble)" in capsys.readouterr().out
    document = json.loads(out.read_text())
    (row,) = document["points"][0]["images"]
    assert row["post_filtered"] == row["post_filter_ensemble"] == 1 and row["bit_exact"]
    assert "self-ensemble" in document["description"]
