"""Progress of a running job, on every runner: workers write small count files, the launcher sums them.

Each stylizing DoFn instance keeps its own counts and rewrites ``OUT/progress/<run>/<writer>.json``
at most every few seconds (one small write, never one per pair); the row reader writes the total.  The
launcher's :class:`ProgressWatcher` thread lists that folder (a handful of files, however many rows)
every ``--progress_every`` seconds and prints ``stylized 120/400 (3 failed) 2.1 pairs/s, eta 2m``.
This works alike for the in-process DirectRunner, its multi_processing workers and Dataflow (where
the Beam counters of the same steps also show in the job's UI).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TextIO

from pipeline import storage

LOG = logging.getLogger("pipeline")
FOLDER = "progress"
TOTAL = "total.json"
STATUSES = ("stylized", "skipped", "error")
RATE_WINDOW = 120.0  # seconds of history the rate (and so the ETA) is taken over


def run_folder(output: str, run_id: str) -> str:
    return storage.join(output, FOLDER, run_id)


def write_total(output: str, run_id: str, rows: int) -> None:
    """The number of rows the run reads (written by the reader once it has read them all)."""
    if run_id:
        storage.write_atomic(storage.join(run_folder(output, run_id), TOTAL), json.dumps({"rows": rows}),
                             "application/json")


class ProgressWriter:
    """Counts of one DoFn instance, flushed to its own file at most every ``every`` seconds and at bundle ends."""

    def __init__(self, output: str, run_id: str, every: float):
        self.path = storage.join(run_folder(output, run_id), f"{uuid.uuid4().hex}.json") if run_id else ""
        self.every = max(0.5, every)
        self.counts = dict.fromkeys(STATUSES, 0)
        self.flushed_at = time.monotonic()
        self.dirty = False

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.dirty = True
        if time.monotonic() - self.flushed_at >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.path or not self.dirty:
            return
        try:
            storage.write_atomic(self.path, json.dumps(self.counts), "application/json")
        except OSError as e:  # progress is a convenience: it must never fail a bundle
            LOG.warning("progress file %s: %s", storage.redact(self.path), e)
        self.flushed_at = time.monotonic()
        self.dirty = False


def read_counts(output: str, run_id: str) -> tuple[int | None, dict[str, int]]:
    """(total rows or None if not known yet, summed counts by status) of a run in progress."""
    folder = run_folder(output, run_id)
    total, counts = None, dict.fromkeys(STATUSES, 0)
    for name in storage.list_names(folder):
        if not name.endswith(".json"):
            continue
        try:
            data = json.loads(storage.read_bytes(storage.join(folder, name)))
        except (OSError, ValueError):  # a file being replaced, or gone: the next poll reads it
            continue
        if name == TOTAL:
            total = int(data.get("rows", 0))
        else:
            for k in STATUSES:
                counts[k] += int(data.get(k, 0))
    return total, counts


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``."""
    if seconds < 90:
        return f"{max(0, round(seconds))}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(total: int | None, counts: dict[str, int], rate: float) -> str:
    """``stylized 120/400 (3 failed, 40 skipped) 2.1 pairs/s, eta 2m``: finished rows of all rows."""
    finished = sum(counts.values())
    of = str(total) if total is not None else "?"
    extra = [f"{counts['error']} failed"] + ([f"{counts['skipped']} skipped"] if counts["skipped"] else [])
    line = f"stylized {finished}/{of} ({', '.join(extra)}) {rate:.3g} pairs/s"
    if total is not None and finished >= total:
        line += ", writing the run files"
    elif total is not None and rate > 0:
        line += f", eta {duration((total - finished) / rate)}"
    return line


class ProgressWatcher:
    """The launcher's thread: a progress line every ``every`` seconds until :meth:`stop`, then removes the
    progress folder (this run's files and those of any killed run before it)."""

    def __init__(self, output: str, run_id: str, every: float, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.output, self.run_id, self.every = output, run_id, every
        self.stream = stream or sys.stdout  # stdout, with the run's summary: stderr stays for what went wrong
        self.clock = clock
        self.started = clock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="nst-progress", daemon=True)
        self.samples: deque[tuple[float, int]] = deque()  # (time, rows finished) when the count moved

    def start(self) -> ProgressWatcher:
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stopped.wait(self.every):
            self.report()

    def report(self) -> str:
        try:
            total, counts = read_counts(self.output, self.run_id)
        except Exception as e:  # noqa: BLE001 - progress is a convenience: it never fails the run
            LOG.warning("progress: %s", e)
            return ""
        line = progress_line(total, counts, self.rate(sum(counts.values())))
        print(f"nst-pipeline: {line}", file=self.stream, flush=True)
        return line

    def rate(self, finished: int) -> float:
        """Rows a second from the first finished row on (start-up is no rate), over at least the last RATE_WINDOW
        seconds and at least the last row's time: pairs slower than the window still show a rate and an ETA."""
        now = self.clock()
        if finished == 0:
            return 0.0
        if not self.samples or finished > self.samples[-1][1]:
            self.samples.append((now, finished))  # only when the count moves: the last two keep a span
        while len(self.samples) > 2 and self.samples[1][0] <= now - RATE_WINDOW:
            self.samples.popleft()
        t0, f0 = self.samples[0]
        if len(self.samples) == 1 or now <= t0:
            return finished / (now - self.started) if now > self.started else 0.0
        return (finished - f0) / (now - t0)

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        self.report()  # the last line: where the run ended
        try:
            storage.remove_tree(storage.join(self.output, FOLDER))  # this run's files, and any a killed run left
        except Exception as e:  # noqa: BLE001 - as above
            LOG.warning("progress folder: %s", e)
