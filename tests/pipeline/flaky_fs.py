"""A Beam FileSystem for tests: ``flaky:///abs/path`` is the local file at /abs/path, but an open of a path
listed in FAILURES fails that many times first, as an overloaded GCS fails (HTTP 503)."""

from __future__ import annotations

from apache_beam.io.localfilesystem import LocalFileSystem
from google.api_core.exceptions import ServiceUnavailable

PREFIX = "flaky://"
FAILURES: dict[str, int] = {}  # flaky:// path -> opens still to fail
OPENS: dict[str, int] = {}  # flaky:// path -> opens tried


def _local(path: str) -> str:
    return path[len(PREFIX):] if path.startswith(PREFIX) else path


class FlakyFileSystem(LocalFileSystem):
    @classmethod
    def scheme(cls) -> str:
        return "flaky"

    def join(self, basepath, *paths):
        return PREFIX + super().join(_local(basepath), *paths)

    def split(self, path):
        head, tail = super().split(_local(path))
        return PREFIX + head, tail

    def exists(self, path):
        return super().exists(_local(path))

    def checksum(self, path):
        return super().checksum(_local(path))

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        OPENS[path] = OPENS.get(path, 0) + 1
        if FAILURES.get(path, 0) > 0:
            FAILURES[path] -= 1
            raise ServiceUnavailable(f"injected 503 for {path}")
        return super().open(_local(path), mime_type, compression_type)
