"""eval/check_round_trip.py: the codec contract checker (pass, fail, bad input)."""

import numpy as np
import pytest

from eval import check_round_trip


def test_a_small_model_passes_at_odd_sizes(small_weights_file, capsys):
    status = check_round_trip.main(
        ["--weights", str(small_weights_file), "--sizes", "37x21,64x64"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.count(" ok") == 2 and "37x21" in out and "FAILED" not in out


def test_a_rate_mismatch_fails(small_weights_file, monkeypatch, capsys):
    # No tolerance at all: real and estimated bits never agree exactly.
    monkeypatch.setattr(check_round_trip, "RATE_TOLERANCE", 0.0)
    monkeypatch.setattr(check_round_trip, "RATE_SLACK_BITS", 0)
    monkeypatch.setattr(check_round_trip, "RATE_CHECK_PIXELS", 1)
    status = check_round_trip.main(
        ["--weights", str(small_weights_file), "--sizes", "32x32"]
    )
    assert status == 1 and "FAILED" in capsys.readouterr().out


def test_crop_or_resize_gives_the_size_asked_for():
    img = np.arange(10 * 6 * 3, dtype=np.uint8).reshape(10, 6, 3)
    assert check_round_trip.crop_or_resize(img, 4, 5).shape == (4, 5, 3)
    assert check_round_trip.crop_or_resize(img, 4, 5)[0, 0, 0] == img[3, 0, 0]
    assert check_round_trip.crop_or_resize(img, 23, 7).shape == (23, 7, 3)


@pytest.mark.parametrize(
    "argv", [["--model", "no-such-model"], ["--model", "mbt2018-mean", "--sizes", "64"]]
)
def test_bad_arguments_exit_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as error:
        check_round_trip.main(argv)
    assert error.value.code == 2
    assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]
