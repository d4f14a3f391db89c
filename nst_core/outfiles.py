"""Local output files of the command-line tools: checked before any work, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from nst_core.errors import InputError


def check_output(path: str | os.PathLike, what: str) -> bool:
    """Raise InputError (one line naming ``what`` and the path) unless ``path`` can be written as a file.

    Returns whether the file exists already (the caller decides between refusing and overwriting).
    Writability is tried, not guessed from permission bits: a probe file is created and removed in
    the folder (root passes permission checks, /proc refuses writes whatever the bits say).
    """
    text = os.fspath(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir():
        raise InputError(f"{what} {text}: is a folder; give a file name")
    parent = p.parent
    if not parent.exists():
        raise InputError(f"{what} {text}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{what} {text}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:
        raise InputError(f"{what} {text}: cannot write in {parent} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return p.is_file()


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (no half files)."""
    p = Path(path)
    if p.exists() and not p.is_file():  # /dev/null, a fifo: write into it, never rename over it
        with open(p, "wb") as f:
            f.write(data)
        return p
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output file gets the usual mode
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
