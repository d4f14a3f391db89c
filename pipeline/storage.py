"""Whole-file reads and atomic writes on local paths and gs:// through Beam's FileSystems.

Atomic means no reader ever sees half a file: local files are written to a hidden temp file in the
same folder and renamed over the target (rename is atomic on POSIX); GCS objects only appear once
their upload completes, so they are written in place (a GCS "rename" is a copy plus delete, slower
and no safer).  Temp files left behind by a killed run are removed by :func:`remove_stale_temps`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import posixpath
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

TEMP_MARK = ".tmp-"
RAW = CompressionTypes.UNCOMPRESSED  # never guess compression from a file's extension
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before each retry of a transient failure; then it is raised
LOG = logging.getLogger("pipeline")
T = TypeVar("T")


class TransientStorageError(OSError):
    """A storage call kept failing the way an overloaded or unreachable service fails (timeouts, 429,
    5xx): not the row's fault, so it is raised for Beam to retry the bundle, never kept as a row error."""


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` (or what it wraps) is a failure that a later try may not repeat."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, TransientStorageError | TimeoutError | ConnectionError):
            return True
        if _is_transient_http(err):
            return True
        details = getattr(err, "exception_details", None)  # BeamIOError: path -> exception
        if isinstance(details, dict):
            todo += [d for d in details.values() if isinstance(d, BaseException)]
        todo += [err.__cause__, err.__context__]
    return False


def _is_transient_http(err: BaseException) -> bool:
    try:
        from google.api_core import exceptions as api
        from requests import exceptions as http
    except ImportError:  # no GCS client installed: nothing of its kind can be raised
        return False
    return isinstance(err, api.TooManyRequests | api.ServerError | http.ConnectionError | http.Timeout)


def retried(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` retried with backoff (:data:`RETRY_DELAYS`) while it fails transiently, then
    :class:`TransientStorageError`; any other failure passes through at once."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not is_transient(e):
                    raise
                if delay is None:
                    raise TransientStorageError(f"{fn.__name__} {redact(str(args[0]) if args else '')}: still "
                                                f"failing after {attempt + 1} tries ({type(e).__name__}: "
                                                f"{redact(str(e))[:300]})") from e
                LOG.warning("%s: %s, retrying in %.1f s", fn.__name__, type(e).__name__, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")
    return call


_URL = re.compile(r"""(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s?#'"]*@)?(?P<rest>[^\s?#'"]*)"""
                  r"""(?P<query>\?[^\s#'"]*)?""")


def redact(text: str) -> str:
    """``text`` with the secrets a URL can carry masked: ``user:password@`` and the query (signed-URL
    signatures, access tokens).  Local paths are left alone.  Used on everything the run writes or logs."""
    def mask(m: re.Match) -> str:
        return (m["scheme"] + ("***@" if m["user"] else "") + m["rest"]
                + ("?<redacted>" if m["query"] and len(m["query"]) > 1 else m["query"] or ""))
    return _URL.sub(mask, text) if "://" in text else text


def is_local(path: str) -> bool:
    return "://" not in path


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(base, *parts)
    return FileSystems.join(base, *parts)


def dirname(path: str) -> str:
    if is_local(path):
        return os.path.dirname(os.path.abspath(path))
    return FileSystems.split(path)[0]


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if not is_local(path) else os.path.basename(path)


def resolve(base_dir: str, path: str) -> str:
    """``path`` as written in a manifest, resolved against the manifest's folder (local or gs://)."""
    path = path.strip()
    if not is_local(path):
        return path
    if os.path.isabs(path):
        return os.path.normpath(path)
    if is_local(base_dir):
        return os.path.normpath(os.path.join(base_dir, path))
    scheme, rest = base_dir.split("://", 1)
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"


def supported(path: str) -> bool:
    """Whether a filesystem is installed for ``path`` (local, gs://, ...); https:// etc. are not."""
    if is_local(path):
        return True
    try:
        FileSystems.get_filesystem(path)
    except ValueError:
        return False
    return True


@retried
def read_bytes(path: str) -> bytes:
    """Bytes of a whole file; FileNotFoundError if it does not exist."""
    if is_local(path):
        with open(path, "rb") as f:
            return f.read()
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    with FileSystems.open(path, compression_type=RAW) as f:
        return f.read()


@retried
def stamp(path: str) -> dict[str, Any]:
    """A cheap identity of the bytes at ``path``, read without reading them: a local file's size and
    modification time; a gs:// object's CRC32C, which GCS computes from the object's bytes.
    FileNotFoundError if there is nothing at ``path``."""
    if is_local(path):
        st = os.stat(path)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        return {"crc32c": FileSystems.checksum(path)}
    except BeamIOError:
        if not FileSystems.exists(path):
            raise FileNotFoundError(path) from None
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unchanged(path: str, recorded: dict[str, Any]) -> bool:
    """Whether ``path`` still holds the bytes ``recorded`` (a :func:`stamp` plus ``sha256``) describes.

    The stamp decides when it matches; a local file whose size or mtime moved (a copy, a checkout, a
    touch) is read and judged by its sha256, so only a real change of content counts as one."""
    try:
        now = stamp(path)
    except FileNotFoundError:
        return False
    if all(recorded.get(k) == v for k, v in now.items()):
        return True
    if is_local(path) and "sha256" in recorded and now.get("size") == recorded.get("size"):
        return sha256(read_bytes(path)) == recorded["sha256"]
    return False


@retried
def read_head(path: str, size: int) -> bytes:
    """The first ``size`` bytes of a file (all of it if shorter); FileNotFoundError if it does not exist."""
    if is_local(path):
        with open(path, "rb") as f:
            return f.read(size)
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    with FileSystems.open(path, compression_type=RAW) as f:
        return f.read(size)


@retried
def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else FileSystems.exists(path)


@retried
def write_atomic(path: str, data: bytes | str, mime_type: str = "application/octet-stream") -> None:
    """Write ``data`` so readers see either the old file or the whole new one, never a part."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    _write_chunks(path, (blob,), mime_type)


@retried
def match(pattern: str) -> list[str]:
    """Paths matching a glob (local or gs://), sorted; empty list if none."""
    result = FileSystems.match([pattern])[0]
    return sorted(m.path for m in result.metadata_list)


@retried
def move(src: str, dst: str) -> None:
    """Move one file (local: a rename, with the target folder made; gs://: Beam's copy-then-delete rename)."""
    if is_local(src) and is_local(dst):
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        os.replace(src, dst)
        return
    FileSystems.rename([src], [dst])


def remove_stale_temps(folder: str) -> int:
    """Delete temp files a killed run left in a local ``folder``; returns how many."""
    if not is_local(folder) or not os.path.isdir(folder):
        return 0
    stale = [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(".") and TEMP_MARK in n]
    for p in stale:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
    return len(stale)


@retried
def write_stream(path: str, chunks: Callable[[], Iterable[bytes]], mime_type: str = "application/octet-stream") -> None:
    """Write the bytes ``chunks()`` yields, atomically like :func:`write_atomic`, never holding them all
    (``chunks`` is a callable so a retry can start the stream again)."""
    _write_chunks(path, chunks(), mime_type)


def _write_chunks(path: str, chunks: Iterable[bytes], mime_type: str) -> None:
    """gs://: one object upload (GCS shows an object only once it is complete); local: a temp file in the
    same folder, fsynced, then renamed over ``path``."""
    if not is_local(path):
        with FileSystems.create(path, mime_type=mime_type, compression_type=RAW) as f:
            for chunk in chunks:
                f.write(chunk)
        return
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@retried
def open_read(path: str) -> IO[bytes]:
    """A binary reader of one file (local or gs://); FileNotFoundError if it does not exist."""
    if is_local(path):
        return open(path, "rb")
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    return FileSystems.open(path, compression_type=RAW)


@retried
def remove(paths: list[str]) -> None:
    """Delete files (local or gs://); no error for one already gone."""
    for path in paths:
        if is_local(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        elif FileSystems.exists(path):
            FileSystems.delete([path])


@retried
def remove_tree(folder: str) -> None:
    """Delete a folder and everything under it (gs://: every object under the prefix); no error if absent."""
    if is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the parent too, once empty (gs:// has no folders to leave behind)
            os.rmdir(os.path.dirname(os.path.abspath(folder)))
        return
    prefix = folder.rstrip("/") + "/"
    if FileSystems.match([prefix + "**"])[0].metadata_list:
        FileSystems.delete([prefix])


def list_names(folder: str) -> Iterator[str]:
    """Names of the files directly in ``folder`` (no sub-folders, no hidden temp files), streamed where the
    filesystem allows (a local folder is read with scandir, not listed whole)."""
    if is_local(folder):
        if not os.path.isdir(folder):
            return
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and not entry.name.startswith("."):
                    yield entry.name
        return
    for path in match(join(folder, "*")):
        name = basename(path)
        if name and not name.startswith("."):
            yield name
