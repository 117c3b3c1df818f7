"""`llic encode/decode/eval` and the per-image Wiener filter (on where λ is known)."""

import json

import numpy as np
import pytest
from PIL import Image

import llic_jax
from llic_jax.cli import main
from llic_jax.coding import container


@pytest.fixture
def png(tmp_path, photo):
    path = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[150:190, 250:306])).save(path)
    return path


def _flag(stream):
    return container.unpack(stream.read_bytes())[0].wiener_filtered


def test_encode_sends_it_at_a_given_lambda_and_decode_applies_it(
    tmp_path, png, small_weights_file, capsys
):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    weights = ["--weights", str(small_weights_file)]
    # A large λ makes ~100 bytes worth their distortion on a 40 x 56 crop.
    assert main(["encode", str(png), str(stream), *weights, "--lmbda", "10"]) == 0
    assert "Wiener filter" in capsys.readouterr().out and _flag(stream) == 1
    assert main(["decode", str(stream), str(out), *weights]) == 0
    model, variables = llic_jax.load_weights(small_weights_file)
    expected = llic_jax.decompress(model, variables, stream.read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)

    assert main(["encode", str(png), str(stream), *weights, "--lmbda", "10",
                 "--no-wiener"]) == 0  # fmt: skip
    assert "Wiener" not in capsys.readouterr().out and _flag(stream) == 0


def test_weights_without_their_lambda_code_without_it(
    tmp_path, png, small_weights_file, capsys
):
    stream = tmp_path / "x.llic"
    assert main(["encode", str(png), str(stream), "--weights",
                 str(small_weights_file)]) == 0  # fmt: skip
    assert _flag(stream) == 0
    assert main(["encode", str(png), str(stream), "--weights", str(small_weights_file),
                 "--lmbda", "-1"]) == 1  # fmt: skip
    assert "--lmbda must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("off", [False, True])
def test_eval_records_the_wiener_bytes_and_counts_them(
    tmp_path, png, small_weights_file, capsys, off
):
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(small_weights_file), "--data", str(png.parent),
                 "--out", str(out), "--lmbda", "10", "--quiet"]
                + ["--no-wiener"] * off) == 0  # fmt: skip
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    (row,) = document["points"][0]["images"]
    assert row["bit_exact"]
    if off:
        assert "wiener_bytes" not in row and "Wiener" not in document["description"]
    else:
        assert row["wiener_bytes"] > 0 and "Wiener filter sent for 1/1" in printed
        assert "Wiener" in document["description"]
        # the estimate counts the filter's bytes as sent: real stays within the header
        assert 0 < 8 * row["bytes"] - row["estimated_bits"] < 8 * 64
