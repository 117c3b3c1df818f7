"""Writing files so that a reader never sees half a file and a failure keeps the old one.

`write_atomically(path, write)` lets `write` fill a temporary file in the destination's
folder, gives it the permissions a plain `open` would (mkstemp makes 0600 files), and
renames it over `path`; on any error the temporary file is removed and `path` is left
as it was.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["check_destination", "write_atomically"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_destination(path: str | os.PathLike) -> Path:
    """The folder `path` would be written in; raises ValueError if it cannot be.

    Commands call it before long work, so a bad output path fails at once.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such directory")
    return directory


def write_atomically(path: str | os.PathLike, write) -> None:
    """Calls `write(tmp_path)`, then renames the temporary file to `path`.

    Raises:
      ValueError: `path` is a directory or its folder does not exist.
    """
    path = Path(path)
    directory = check_destination(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
