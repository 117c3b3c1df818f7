"""The journal of an `llic eval` run in progress: finished images survive an interruption.

An evaluation with `--refine` runs for hours on a CPU (kodak24 at 60 steps: ~2 h), so an
interrupted run should not start over. `llic eval --out R.json` keeps `R.json.partial`,
JSON lines: first the run's settings (data folder, images, each weights file's
fingerprint, the encoder options), then one line per finished (weights, image) row, each
flushed to disk as it is written. When the run ends, `R.json` is written and the journal
removed. `--resume` reads the journal back and measures only the images it lacks, provided
the settings are the same; a line cut short by the interruption is dropped. Without
`--resume` a journal with finished images stops the command rather than being
overwritten: hours of work may be in it.

Resumed rows keep the times measured by the process that made them (per image, JIT
compilation excluded either way, as `evaluate` measures them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llic_jax.atomic_write import write_atomically

__all__ = ["EvalJournal", "journal_path"]


def journal_path(out: str | os.PathLike) -> Path:
    """Where `llic eval --out OUT` keeps its journal: OUT + '.partial'."""
    return Path(f"{os.fspath(out)}.partial")


class EvalJournal:
    """Rows of finished images, per weights file (by its index in the run's list)."""

    def __init__(self, path: Path, rows: dict[int, dict[str, dict]]):
        self.path = path
        self._rows = rows

    @classmethod
    def start(cls, path: str | os.PathLike, settings: dict, resume: bool) -> EvalJournal:
        """Opens the journal at `path` for a run with `settings` (JSON-serialisable).

        Raises:
          ValueError: a journal with finished rows exists and `resume` is False, or it
            was written with other settings; or the file is not a journal.
        """
        path = Path(path)
        settings = json.loads(json.dumps(settings))  # as it reads back from the file
        rows: dict[int, dict[str, dict]] = {}
        if path.exists():
            stored, rows = _read(path)
            count = sum(len(r) for r in rows.values())
            if not resume and count:
                raise ValueError(
                    f"{path} holds {count} finished images of an interrupted run: add "
                    "--resume to go on with it, or delete it to start over"
                )
            if count and stored != settings:
                changed = sorted(
                    k for k in settings.keys() | stored.keys()
                    if settings.get(k) != stored.get(k)
                )  # fmt: skip
                raise ValueError(
                    f"{path} was written by a run with other settings "
                    f"({', '.join(changed)}): delete it to start over"
                )
        # Rewritten whole (atomically) so that a line cut short cannot glue onto the next.
        lines = [{"settings": settings}] + [
            {"weights": index, "row": row}
            for index, by_image in sorted(rows.items())
            for row in by_image.values()
        ]
        text = "".join(json.dumps(line) + "\n" for line in lines)
        write_atomically(path, lambda tmp: Path(tmp).write_text(text))
        return cls(path, rows)

    def finished(self, weights: int) -> dict[str, dict]:
        """Rows already measured for the `weights`-th weights file, by image name."""
        return dict(self._rows.get(weights, {}))

    def record(self, weights: int, row: dict) -> None:
        """Appends one finished row and flushes it to disk."""
        self._rows.setdefault(weights, {})[row["image"]] = row
        with open(self.path, "a") as f:
            f.write(json.dumps({"weights": weights, "row": row}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """Deletes the journal (the run's results are written)."""
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict, dict[int, dict[str, dict]]]:
    """(settings, rows by weights index and image) of a journal file."""
    lines = path.read_text().splitlines()
    try:
        settings = json.loads(lines[0])["settings"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not an `llic eval` journal") from None
    rows: dict[int, dict[str, dict]] = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
            index, row = int(entry["weights"]), entry["row"]
            name = row["image"]
        except (ValueError, KeyError, TypeError):
            if number == len(lines):  # cut short when the run was interrupted
                break
            raise ValueError(f"{path}: line {number} is not a journal entry") from None
        rows.setdefault(index, {})[name] = row
    return settings, rows
