"""The journal that lets an interrupted `llic eval` resume (llic_jax/eval_journal.py)."""

import json

import pytest

from llic_jax.eval_journal import EvalJournal, journal_path

SETTINGS = {"data": "/photos", "images": {"a.png": "01", "b.png": "02"}, "refine": 60}


def _row(name, bpp):
    return {"image": name, "bpp": bpp, "psnr": 30.123456789012345, "ms_ssim": None}


def test_rows_read_back_as_written(tmp_path):
    path = journal_path(tmp_path / "r.json")
    assert path.name == "r.json.partial"
    journal = EvalJournal.start(path, SETTINGS, resume=False)
    journal.record(0, _row("a.png", 0.25))
    journal.record(1, _row("b.png", 0.5))
    again = EvalJournal.start(path, SETTINGS, resume=True)
    assert again.finished(0) == {"a.png": _row("a.png", 0.25)}
    assert again.finished(1) == {"b.png": _row("b.png", 0.5)}
    assert again.finished(2) == {}
    again.remove()
    assert not path.exists()


def test_finished_images_are_not_overwritten_without_resume(tmp_path):
    path = tmp_path / "r.json.partial"
    EvalJournal.start(path, SETTINGS, resume=False).record(0, _row("a.png", 0.25))
    with pytest.raises(ValueError, match="holds 1 finished images.*--resume"):
        EvalJournal.start(path, SETTINGS, resume=False)
    assert EvalJournal.start(path, SETTINGS, resume=True).finished(0)


def test_an_empty_journal_needs_no_resume(tmp_path):
    path = tmp_path / "r.json.partial"
    EvalJournal.start(path, SETTINGS, resume=False)
    other = {**SETTINGS, "refine": 20}
    assert EvalJournal.start(path, other, resume=False).finished(0) == {}


def test_other_settings_are_refused_by_name(tmp_path):
    path = tmp_path / "r.json.partial"
    EvalJournal.start(path, SETTINGS, resume=False).record(0, _row("a.png", 0.25))
    other = {**SETTINGS, "refine": 20, "images": {"a.png": "01", "b.png": "03"}}
    with pytest.raises(ValueError, match=r"other settings \(images, refine\)"):
        EvalJournal.start(path, other, resume=True)


def test_a_line_cut_short_is_dropped_and_cleaned_up(tmp_path):
    path = tmp_path / "r.json.partial"
    journal = EvalJournal.start(path, SETTINGS, resume=False)
    journal.record(0, _row("a.png", 0.25))
    with open(path, "a") as f:  # the run was killed in the middle of a write
        f.write('{"weights": 0, "row": {"image": "b.p')
    resumed = EvalJournal.start(path, SETTINGS, resume=True)
    assert list(resumed.finished(0)) == ["a.png"]
    resumed.record(0, _row("b.png", 0.5))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [entry.get("row", {}).get("image") for entry in lines] == [
        None,
        "a.png",
        "b.png",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not an `llic eval` journal"),
        ('{"results": {}}\n', "not an `llic eval` journal"),
        ('{"settings": {}}\nnot json\n{"weights": 0, "row": {"image": "a"}}\n', "line 2"),
    ],
)
def test_a_file_that_is_no_journal_is_refused(tmp_path, text, message):
    path = tmp_path / "r.json.partial"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        EvalJournal.start(path, SETTINGS, resume=True)
    assert path.read_text() == text  # left as it was
