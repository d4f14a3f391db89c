"""The pipeline's steps: read rows, stylize pairs (one engine per worker process), write the run files.

Every manifest row leaves the stylize step as exactly one outcome record (status stylized, skipped
or error); the run-files step checks that rows in == stylized + skipped + errors and fails the run
loudly if not (pipeline.runfiles).  Output layout under OUT: images/<id>.png|jpg|webp, thumbs/<id>.webp,
metrics/<id>.json (written last, it marks the pair done), sources/ (thumbnails of the inputs), sheets/,
metrics.jsonl, errors.jsonl, report.html, summary.json.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared
from PIL import Image, UnidentifiedImageError

from nst_core import InputError, NSTError, StyleOptions
from nst_core.images import EXTENSIONS, MIME_TYPES
from pipeline import progress, report, storage
from pipeline.manifest import ManifestError, Pair, RowError, cross, parse, parse_lines
from pipeline.resources import Served, WorkerResources, WorkerSetupError, acquire

LOG = logging.getLogger("pipeline")
NS = "nst"
NEW = "not made yet"
SNIFF_BYTES = 4096  # enough for every image header Pillow identifies
SNIFF_THREADS = 16


def image_rel(pair_id: str, image_format: str = "png") -> str:
    return f"images/{pair_id}.{EXTENSIONS[image_format]}"


def metrics_rel(pair_id: str) -> str:
    return f"metrics/{pair_id}.json"


# --- input -------------------------------------------------------------------------------------------
class ReadManifest(beam.DoFn):
    """Manifest path -> Pair | RowError per row (one reader, so duplicate ids are found in file order);
    ``lines`` (first, last): a sub-run's share, the rows on those lines (the total counts every row)."""

    def __init__(self, base: StyleOptions, output: str = "", run_id: str = "",
                 lines: tuple[int, int] | None = None):
        self.base, self.output, self.run_id, self.lines = base, output, run_id, lines
        self.rows = Metrics.counter(NS, "rows_read")

    def process(self, path: str) -> Iterator[Pair | RowError]:
        data = storage.read_bytes(path)
        if self.lines:
            items, total = parse_lines(data, path, self.base, self.lines)
        else:
            items = list(parse(data, path, self.base))
            total = len(items)
        for item in items:
            self.rows.inc()
            yield item
        progress.write_total(self.output, self.run_id, total)


class CrossPairs(beam.DoFn):
    """(content globs, style globs) -> every combination of the files they match as a Pair (cross mode);
    a matched file that is not an image is one RowError, not one per combination."""

    def __init__(self, base: StyleOptions, output: str = "", run_id: str = "",
                 lines: tuple[int, int] | None = None):
        self.base, self.output, self.run_id, self.lines = base, output, run_id, lines
        self.rows = Metrics.counter(NS, "rows_read")

    def process(self, globs: tuple[list[str], list[str], str | None]) -> Iterator[Pair | RowError]:
        rows = cross_rows(*globs[:2], self.base, *globs[2:])
        progress.write_total(self.output, self.run_id, len(rows))
        for item in rows:
            if self.lines and not self.lines[0] <= item.line <= self.lines[1]:
                continue
            self.rows.inc()
            yield item


def cross_rows(content_globs: list[str], style_globs: list[str], base: StyleOptions,
               masks: str | None = None) -> list[Pair | RowError]:
    """Cross mode's rows: every combination of the files the globs match (their union), and one RowError
    per matched file that is not an image (sniffed; ManifestError if a flag's globs match nothing);
    ``masks`` names each content's mask (:func:`pipeline.manifest.mask_path`)."""
    found = []
    for patterns in (content_globs, style_globs):
        paths = sorted({p for g in patterns for p in storage.match(g)})
        if not paths:
            raise ManifestError(f"glob {', '.join(patterns)}: matched no files")
        found.append(paths)
    contents, styles = found
    with ThreadPoolExecutor(SNIFF_THREADS) as pool:  # a round trip each on gs://: overlap them
        verdicts = dict(zip(contents + styles, pool.map(not_an_image, contents + styles)))
    return list(cross(contents, styles, base, {p: why for p, why in verdicts.items() if why}, masks))


def not_an_image(path: str) -> str:
    """Why the file at ``path`` is no image, judged from its first bytes; "" if it may be one (a damaged
    image still fails its own pairs, with the decoder's reason)."""
    try:
        head = storage.read_head(path, SNIFF_BYTES)
    except OSError as e:
        if storage.is_transient(e):
            raise
        return f"cannot read it ({e})"
    try:
        Image.open(io.BytesIO(head))
    except UnidentifiedImageError:
        return "not an image"
    except Exception:  # noqa: BLE001 - an image whose header runs past the sniffed bytes
        return ""
    return ""


def split_rows(item: Pair | RowError) -> Iterator[Any]:
    if isinstance(item, RowError):
        yield beam.pvalue.TaggedOutput("errors", item)
    else:
        yield item


def error_record(err: RowError) -> dict[str, Any]:
    row = ({k: storage.redact(v) if isinstance(v, str) else v for k, v in err.row.items()}
           if isinstance(err.row, dict) else storage.redact(err.row))
    return {"line": err.line, "id": err.id, "status": "error", "stage": err.stage,
            "reason": storage.redact(err.reason), "row": row}


class Progressing(beam.DoFn):
    """A DoFn whose outcomes count towards the launcher's progress line (:mod:`pipeline.progress`)."""

    progress_to: tuple[str, str, float] = ("", "", 10.0)  # (output, run id, seconds); no run id: no progress
    _progress: progress.ProgressWriter | None = None

    def with_progress(self, output: str, run_id: str, every: float) -> Progressing:
        self.progress_to = (output, run_id, every)
        return self

    def setup(self) -> None:
        output, run_id, every = self.progress_to
        self._progress = progress.ProgressWriter(output, run_id, every / 2) if run_id else None

    def note(self, status: str) -> None:
        if self._progress is not None:
            self._progress.add(status)

    def finish_bundle(self) -> None:
        if self._progress is not None:
            self._progress.flush()

    def teardown(self) -> None:
        self.finish_bundle()


class RecordRowError(Progressing):
    """Counts a parse-time RowError and turns it into its outcome record."""

    def __init__(self) -> None:
        self.failed = Metrics.counter(NS, "pairs_failed")

    def process(self, err: RowError) -> Iterator[dict[str, Any]]:
        self.failed.inc()
        self.note("error")
        yield error_record(err)


# --- the engine, once per worker process ------------------------------------------------------------
class Inputs:
    """Reads one pair's input files and records what it read (stamp and sha256 per path), so that a
    rerun redoes the pair when any of them changes, even at the same path."""

    def __init__(self, resources: WorkerResources | None = None) -> None:
        self.resources = resources
        self.read: dict[str, dict[str, Any]] = {}

    def get(self, path: str, what: str, cached: bool = False) -> bytes:
        """The bytes of an input image (``cached``: from the worker's style cache); InputError naming it
        (a row error, not a crash) if it is not there."""
        try:
            stamp = storage.stamp(path)  # before the read: a change during it shows as a change next run
            if cached and self.resources is not None:
                data = self.resources.style_bytes(path, stamp)
            else:
                data = storage.read_bytes(path)
        except FileNotFoundError:
            raise InputError(f"{what} {path}: file not found") from None
        self.read[path] = {**stamp, "sha256": storage.sha256(data)}
        return data


def pair_inputs(pair: Pair) -> list[str]:
    """Every file a pair's output depends on."""
    return [pair.content, *pair.styles, *([pair.options.init_path] if pair.options.init_path else []),
            *([pair.mask] if pair.mask else [])]


def failure_reason(e: Exception, what: str) -> str:
    """The one-line reason an outcome record gives for ``e``; an unexpected type is logged with its traceback.

    A transient storage failure (retried already) is no reason to fail a row: it is raised again, and
    Beam retries the bundle."""
    if storage.is_transient(e) or isinstance(e, WorkerSetupError):
        raise e
    if isinstance(e, (NSTError, OSError)):
        return str(e)
    LOG.error("%s: unexpected failure\n%s", what, storage.redact(traceback.format_exc()))
    return f"unexpected {type(e).__name__}: {e}"


class PairDoFn(Progressing):
    """What every stylizing step shares: the worker's resources, the done check (resume), writing a result
    (image, then metrics), and turning a pair into exactly one outcome record (skipped, stylized or error)
    with its counters."""

    def __init__(self, output: str, engine_options: StyleOptions | None = None, shared: Shared | None = None,
                 thumb_size: int = 160, *, require_gpu: bool = False):
        self.output = output
        self.engine_options = engine_options or StyleOptions()
        self.shared = shared or Shared()
        self.require_gpu = require_gpu
        self.thumb_size = thumb_size
        self._resources: WorkerResources | None = None
        self.stylized = Metrics.counter(NS, "pairs_stylized")
        self.skipped = Metrics.counter(NS, "pairs_skipped")
        self.failed = Metrics.counter(NS, "pairs_failed")
        self.model_loads = Metrics.counter(NS, "model_loads")
        self.seconds = Metrics.distribution(NS, "pair_seconds_ms")
        self.loss = {k: Metrics.distribution(NS, f"loss_{k}_x1e6") for k in ("total", "content", "style", "tv")}

    def _path(self, rel: str) -> str:
        return storage.join(self.output, *rel.split("/"))

    def resources(self) -> WorkerResources:
        """This process's WorkerResources (acquired on first use; loading anything in it is lazy too)."""
        if self._resources is None:
            self._resources = acquire(self.shared, self.engine_options, self.require_gpu)
        return self._resources

    def engine(self) -> Served:
        """The process's Stylizer (``.model``), its one VGG19: loaded on first use, counted in model_loads."""
        return self.resources().stylizer(on_load=self.model_loads.inc)

    def done_record(self, pair: Pair) -> dict[str, Any] | None:
        """The stored metrics if OUT already holds this exact pair (same fingerprint and inputs, image present)."""
        stored, why = self.check_done(pair)
        if stored is None and why != NEW:
            LOG.info("%s: %s, redoing the pair", pair.id, why)
        return stored

    def check_done(self, pair: Pair) -> tuple[dict[str, Any] | None, str]:
        """(stored metrics, "") if OUT holds this exact pair, else (None, why it must be made)."""
        try:
            stored = json.loads(storage.read_bytes(self._path(metrics_rel(pair.id))))
        except FileNotFoundError:
            return None, NEW
        except (OSError, ValueError) as e:  # a torn or foreign file: redo the pair
            if storage.is_transient(e):
                raise
            return None, f"unreadable metrics file ({e})"
        if not isinstance(stored, dict) or stored.get("fingerprint") != pair.fingerprint:
            return None, "stored output is for other inputs, options or mode"
        if not storage.exists(self._path(image_rel(pair.id, pair.options.image_format))):
            return None, "image missing"
        recorded = stored.get("inputs")
        if not isinstance(recorded, dict):
            return None, "stored output does not record its inputs' contents"
        for path in pair_inputs(pair):
            if not isinstance(recorded.get(path), dict) or not storage.unchanged(path, recorded[path]):
                return None, f"{storage.redact(path)} changed since its output was made"
        return stored, ""

    def skipped_record(self, pair: Pair, stored: dict[str, Any]) -> dict[str, Any]:
        self.skipped.inc()
        self.note("skipped")
        thumb = None
        if self.thumb_size:
            thumb = report.thumb_rel(pair.id)
            if not storage.exists(self._path(thumb)):  # an output of a run before thumbnails were files
                try:
                    image = storage.read_bytes(self._path(image_rel(pair.id, pair.options.image_format)))
                    thumb = self.write_thumb(pair.id, report.thumbnail(image, self.thumb_size))
                except OSError as e:
                    if storage.is_transient(e):
                        raise
                    thumb = None
        return self.record(pair, "skipped", stored, thumb)

    def write_thumb(self, pair_id: str, data: bytes | None) -> str | None:
        """Write a pair's thumbnail under OUT; its relative path, or None if there is no picture."""
        if data is None:
            return None
        storage.write_atomic(self._path(report.thumb_rel(pair_id)), data, "image/webp")
        return report.thumb_rel(pair_id)

    def failed_record(self, pair: Pair, reason: str, stage: str = "stylize") -> dict[str, Any]:
        self.failed.inc()
        self.note("error")
        return error_record(RowError(line=pair.line, reason=reason, row=pair.row, id=pair.id, stage=stage))

    def attempt(self, pair: Pair, stylize: Callable[[Inputs], Any]) -> dict[str, Any]:
        """Run ``stylize(inputs)`` (-> a Result) and write its image, then its metrics; or the pair's error record."""
        inputs = Inputs(self.resources())
        try:
            result = stylize(inputs)
        except Exception as e:  # noqa: BLE001 - one pair's failure must not sink the batch
            return self.failed_record(pair, failure_reason(e, pair.id))
        fmt = pair.options.image_format
        try:  # before the metrics: a cut-out written as JPEG records the background it was composited onto
            encoded = result.encode(fmt, pair.options.image_quality)
        except InputError as e:
            return self.failed_record(pair, f"{pair.id}: {e}", "encode")
        metrics = {"mode": "optimize", **result.metrics(), "id": pair.id, "line": pair.line,
                   "fingerprint": pair.fingerprint, "inputs": inputs.read, "row": pair.row,
                   "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                   "worker": {"host": socket.gethostname(), "pid": os.getpid()}}
        storage.write_atomic(self._path(image_rel(pair.id, fmt)), encoded, MIME_TYPES[fmt])
        thumb = self.write_thumb(pair.id, report.thumbnail(result.image, self.thumb_size)) if self.thumb_size else None
        storage.write_atomic(self._path(metrics_rel(pair.id)), json.dumps(metrics, indent=1, sort_keys=True),
                             "application/json")  # last: its presence marks the pair done
        self.stylized.inc()
        self.note("stylized")
        self.seconds.update(int(result.seconds * 1000))
        for k, dist in self.loss.items():
            value = result.losses.get(k)
            if isinstance(value, float) and value == value and abs(value) < 9e12:
                dist.update(int(value * 1e6))
        return self.record(pair, "stylized", metrics, thumb)

    @staticmethod
    def record(pair: Pair, status: str, metrics: dict[str, Any], thumb: str | None) -> dict[str, Any]:
        """One line of metrics.jsonl (plus a short loss trace for the report, dropped before writing)."""
        network = metrics.get("network") or {}
        return {"line": pair.line, "id": pair.id, "status": status, "content": pair.content,
                "styles": list(pair.styles), "mask": pair.mask, "mode": metrics.get("mode", "optimize"),
                "losses": metrics.get("losses"), "steps": metrics.get("steps"),
                "seconds": metrics.get("seconds"), "size": metrics.get("size"),
                "precision": metrics.get("precision"), "retried": metrics.get("retried", ""),
                "network": {k: network.get(k) for k in ("path", "training")} if network else None,
                # the options object, not its dict: it pickles as its changed fields (the sheet writes the dict)
                "options": metrics["options"] if metrics.get("mode") == "fast" else pair.options,
                "image": image_rel(pair.id, pair.options.image_format), "metrics": metrics_rel(pair.id),
                "thumb": thumb, "trace": short_trace(metrics.get("trace"))}


class StylizeDoFn(PairDoFn):
    """Pair -> outcome record: skipped if OUT already holds it, else stylized by optimisation or error."""

    def __init__(self, output: str, engine_options: StyleOptions, shared: Shared, thumb_size: int = 160, *,
                 require_gpu: bool = False):
        super().__init__(output, engine_options, shared, thumb_size, require_gpu=require_gpu)
        self.cache_hits = Metrics.counter(NS, "style_cache_hits")
        self.cache_misses = Metrics.counter(NS, "style_cache_misses")

    def process(self, pair: Pair) -> Iterator[dict[str, Any]]:
        stored = self.done_record(pair)
        if stored is None:
            yield self.attempt(pair, lambda inputs: self.stylize(pair, inputs))
        else:
            yield self.skipped_record(pair, stored)

    def stylize(self, pair: Pair, inputs: Inputs):
        content = inputs.get(pair.content, "content")
        styles = [inputs.get(s, "style", cached=True) for s in pair.styles]
        init = inputs.get(pair.options.init_path, "init image") if pair.options.init_path else None
        mask = inputs.get(pair.mask, "mask") if pair.mask else None
        # after the reads: a run whose pairs all fail to read loads no model
        engine = self.engine()
        with engine.lock:
            st = engine.model
            hits, misses = st.style_cache_hits, st.style_cache_misses
            result = st.stylize(content, styles, options=pair.options, content_name=pair.content,
                                style_names=list(pair.styles), init_image=init, mask=mask, mask_name=pair.mask)
            self.cache_hits.inc(st.style_cache_hits - hits)
            self.cache_misses.inc(st.style_cache_misses - misses)
        return result


TRACE_POINTS = 40  # points of the loss trace a record carries for the report's small plot


def short_trace(trace: Any) -> list[float]:
    """The total loss of at most TRACE_POINTS evenly spaced steps of a metrics trace (first and last kept)."""
    if not isinstance(trace, list):
        return []
    totals = [float(e["total"]) for e in trace if isinstance(e, dict) and isinstance(e.get("total"), (int, float))]
    if len(totals) <= TRACE_POINTS:
        return [round(v, 6) for v in totals]
    step = (len(totals) - 1) / (TRACE_POINTS - 1)
    return [round(totals[round(i * step)], 6) for i in range(TRACE_POINTS)]


def source_paths(pair: Pair) -> Iterator[str]:
    yield pair.content
    yield from pair.styles
    if pair.mask:
        yield pair.mask


class SourceThumbnail(beam.DoFn):
    """Path of a content, style or mask image -> its thumbnail under OUT/sources/, made again when the file's
    stamp moved since (a photo replaced at the same path must not keep its old picture in the report)."""

    def __init__(self, output: str, size: int):
        self.output, self.size = output, size

    def process(self, path: str) -> Iterator[str]:
        target = storage.join(self.output, *report.source_rel(path).split("/"))
        marker = target.rsplit(".", 1)[0] + ".stamp.json"
        try:
            now = json.dumps(storage.stamp(path), sort_keys=True)
            if not storage.exists(target) or self._read(marker) != now:
                data = report.thumbnail(storage.read_bytes(path), self.size)
                if data is not None:
                    storage.write_atomic(target, data, "image/webp")
                    storage.write_atomic(marker, now, "application/json")
        except (OSError, ValueError) as e:  # unreadable or no filesystem for it: the pair's own row says why
            if isinstance(e, OSError) and storage.is_transient(e):
                raise
            return
        yield path

    @staticmethod
    def _read(path: str) -> str:
        try:
            return storage.read_bytes(path).decode()
        except FileNotFoundError:
            return ""
