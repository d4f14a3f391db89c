"""The end of a run, streamed: no step holds every outcome record of the run.

    outcomes -> key by sheet (PAGE_ROWS manifest lines each) -> GroupByKey -> per sheet: sorted records
                 -> _parts/<run>/metrics-NNNN.jsonl, errors-NNNN.jsonl and sheets/NNNN.html
                 -> page stats (rows, lines, doubled lines) -> combined: the accounting
    outcomes -> RunStats combiner: histograms, errors by reason, groups by style, the worst pairs (bounded)
    files under images/, metrics/, thumbs/ x the outputs the rows claim -> orphans (moved aside with --prune)
    -> Finish (one small element): metrics.jsonl and errors.jsonl as the concatenation of the sheet parts in
       page order (streamed, so they stay in line order), report.html, orphans.txt, summary.json; then the
       accounting check, which fails the run loudly.

A local run in sub-runs (pipeline.run) runs the sheet and combiner steps per sub-run, which leaves its
accumulators, sheet list and claims as parts (SaveSubRun); merge_sub_runs then does the rest once: the
accumulators merged, the sheets' links made the whole run's, orphans found through bucket files by id, Finish.
"""

from __future__ import annotations

import heapq
import io
import json
import logging
import math
import os
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from nst_core import StyleOptions
from pipeline import report, storage

LOG = logging.getLogger("pipeline")
ORPHANS = "orphans.txt"
PARTS = "_parts"
PER_DECADE = 4  # histogram bins per power of ten
MAX_REASONS = 300  # distinct error reasons kept; further ones are only counted
MAX_STYLES = 500  # distinct styles kept; further ones are only counted
MAX_DOUBLED = 1000  # doubled line numbers kept for the summary
EXAMPLES = 3  # example rows per error reason
OUTPUT_DIRS = ("images", "metrics", report.THUMBS)
# Line breaks other than \n that str.splitlines() and many JSON Lines readers split on; json.dumps leaves them raw
# with ensure_ascii=False (the C0 ones it always escapes), so a row holding one would read as two broken lines.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_PATHISH = re.compile(r"(?:[a-z][a-z0-9+.-]*://|/|\.{1,2}/)[^\s,;:()'\"]+|[^\s,;:()'\"]+\.[A-Za-z]{2,5}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_QUOTED = re.compile(r"'[^']*'")
_SHEET_NAME = re.compile(r"^[0-9]{4,}\.html$")  # sheets/NNNN.html, as report.sheet_rel names them


class AccountingError(RuntimeError):
    """Rows in != stylized + skipped + errors: a row was lost or doubled somewhere."""


def jsonl_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def metrics_line(rec: dict[str, Any]) -> dict[str, Any]:
    """An outcome record as its line of metrics.jsonl: no trace, the options as their dict."""
    line = {k: v for k, v in rec.items() if k != "trace"}
    if isinstance(line.get("options"), StyleOptions):
        line["options"] = line["options"].pair_dict()
    return line


def page_of(line: int, page_rows: int) -> int:
    return max(0, int(line) - 1) // page_rows


def reason_key(reason: str) -> str:
    """An error reason with its paths, quoted values and numbers replaced, so alike failures group together."""
    text = _PATHISH.sub("<path>", str(reason))
    text = _QUOTED.sub("'…'", text)
    return _NUMBER.sub("N", text)[:300]


def _style_key(rec: dict[str, Any]) -> str:
    styles = rec.get("styles")
    if not styles and isinstance(rec.get("row"), dict):
        style = rec["row"].get("style")
        styles = style if isinstance(style, list) else [style] if style else []
    return "\n".join(str(s) for s in styles or []) or "(no style)"


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e300 else None


def _bin(v: float) -> int | None:
    return math.floor(math.log10(v) * PER_DECADE) if v > 0 else None


def _brief(rec: dict[str, Any], page_rows: int) -> dict[str, Any]:
    """What the index needs of one of the worst pairs."""
    keep = ("id", "line", "status", "content", "styles", "mask", "losses", "seconds", "steps", "retried", "thumb",
            "image", "trace", "mode")
    return {**{k: rec.get(k) for k in keep if k in rec}, "page": page_of(rec["line"], page_rows)}


class RunStats(beam.CombineFn):
    """Bounded statistics of every outcome record: histograms, errors by reason, groups by style, worst pairs."""

    def __init__(self, page_rows: int, worst: int):
        self.page_rows, self.worst = page_rows, worst

    def create_accumulator(self) -> dict[str, Any]:
        return {"hist": {k: Counter() for k in ("content", "style", "seconds")}, "reasons": {}, "reasons_other": 0,
                "styles": {}, "styles_other": 0, "worst": {k: [] for k in ("content", "style", "slowest", "retried")},
                "networks": {}}

    def add_input(self, acc: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
        style = _style_key(rec)
        group = acc["styles"].get(style)
        if group is None and len(acc["styles"]) < MAX_STYLES:
            group = acc["styles"][style] = {"rows": 0, "stylized": 0, "skipped": 0, "error": 0, "measured": 0,
                                            "content": 0.0, "style": 0.0, "seconds": 0.0}
        if group is None:
            acc["styles_other"] += 1
        else:
            group["rows"] += 1
            group[rec["status"]] = group.get(rec["status"], 0) + 1
        if rec["status"] == "error":
            self._add_error(acc, rec)
            return acc
        losses = rec.get("losses") or {}
        values = {"content": _finite(losses.get("content")), "style": _finite(losses.get("style")),
                  "seconds": _finite(rec.get("seconds"))}
        for k, v in values.items():
            b = _bin(v) if v is not None else None
            if b is not None:
                acc["hist"][k][b] += 1
        if group is not None and None not in values.values():
            group["measured"] += 1
            for k, v in values.items():
                group[k] += v
        tie = -int(rec["line"])
        for key, score in (("content", values["content"]), ("style", values["style"]),
                           ("slowest", values["seconds"]), ("retried", 1.0 if rec.get("retried") else None)):
            if score is not None:
                self._push(acc["worst"][key], (score, tie, rec.get("id") or "", _brief(rec, self.page_rows)))
        net = rec.get("network")
        if net:
            entry = acc["networks"].setdefault(str(net.get("path")), {"training": net.get("training") or {},
                                                                       "pairs": 0})
            entry["pairs"] += 1
        return acc

    def _add_error(self, acc: dict[str, Any], rec: dict[str, Any]) -> None:
        key = reason_key(rec.get("reason", ""))
        group = acc["reasons"].get(key)
        if group is None and len(acc["reasons"]) < MAX_REASONS:
            group = acc["reasons"][key] = {"count": 0, "examples": []}
        if group is None:
            acc["reasons_other"] += 1
            return
        group["count"] += 1
        example = (int(rec["line"]), rec.get("id") or "", page_of(rec["line"], self.page_rows))
        group["examples"] = sorted([*group["examples"], example])[:EXAMPLES]

    def _push(self, heap: list[Any], item: tuple[Any, ...]) -> None:
        if len(heap) < self.worst:
            heapq.heappush(heap, item[:3] + (json.dumps(item[3], sort_keys=True),))
        elif item[:3] > heap[0][:3]:
            heapq.heapreplace(heap, item[:3] + (json.dumps(item[3], sort_keys=True),))

    def merge_accumulators(self, accs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        out = self.create_accumulator()
        for acc in accs:
            for k, c in acc["hist"].items():
                out["hist"][k].update(c)
            for key, g in acc["reasons"].items():
                mine = out["reasons"].get(key)
                if mine is None and len(out["reasons"]) >= MAX_REASONS:
                    out["reasons_other"] += g["count"]
                    continue
                mine = out["reasons"].setdefault(key, {"count": 0, "examples": []})
                mine["count"] += g["count"]
                mine["examples"] = sorted([*mine["examples"], *g["examples"]])[:EXAMPLES]
            out["reasons_other"] += acc["reasons_other"]
            for key, g in acc["styles"].items():
                mine = out["styles"].get(key)
                if mine is None and len(out["styles"]) >= MAX_STYLES:
                    out["styles_other"] += g["rows"]
                    continue
                if mine is None:
                    out["styles"][key] = dict(g)
                else:
                    for k, v in g.items():
                        mine[k] = mine.get(k, 0) + v
            out["styles_other"] += acc["styles_other"]
            for k, heap in acc["worst"].items():
                for item in heap:
                    self._push(out["worst"][k], item[:3] + (json.loads(item[3]),))
            for path, entry in acc["networks"].items():
                mine = out["networks"].setdefault(path, {"training": entry["training"], "pairs": 0})
                mine["pairs"] += entry["pairs"]
        return out

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        worst = {k: [json.loads(item[3]) for item in sorted(heap, reverse=True)] for k, heap in acc["worst"].items()}
        return {**acc, "hist": {k: dict(c) for k, c in acc["hist"].items()}, "worst": worst, "per_decade": PER_DECADE}

    @staticmethod
    def from_json(data: dict[str, Any]) -> dict[str, Any]:
        """An accumulator back from its JSON text (a sub-run's part): bins are ints again, tuples tuples."""
        return {**data, "hist": {k: Counter({int(b): n for b, n in c.items()}) for k, c in data["hist"].items()},
                "reasons": {k: {**g, "examples": [tuple(e) for e in g["examples"]]}
                            for k, g in data["reasons"].items()},
                "worst": {k: [tuple(item) for item in heap] for k, heap in data["worst"].items()}}


def page_stats(keyed: tuple[int, Iterable[dict[str, Any]]]) -> dict[str, Any]:
    """Accounting of one sheet's records: lines are in exactly one sheet, so doubles are found here."""
    page, records = keyed
    lines: Counter[int] = Counter()
    status: Counter[str] = Counter()
    for rec in records:
        lines[int(rec["line"])] += 1
        status[rec["status"]] += 1
    return {"page": page, "first": min(lines), "last": max(lines), "records": sum(lines.values()),
            "lines": len(lines), "doubled": sorted(k for k, n in lines.items() if n > 1), "status": dict(status)}


class Accounting(beam.CombineFn):
    """The pages' stats summed: status counts, distinct lines, doubled lines (first MAX_DOUBLED), the sheet list."""

    def create_accumulator(self) -> dict[str, Any]:
        return {"status": Counter(), "lines": 0, "doubled": [], "doubled_count": 0, "pages": []}

    def add_input(self, acc: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
        acc["status"].update(stats["status"])
        acc["lines"] += stats["lines"]
        acc["doubled"] = sorted([*acc["doubled"], *stats["doubled"]])[:MAX_DOUBLED]
        acc["doubled_count"] += len(stats["doubled"])
        acc["pages"].append((stats["page"], stats["first"], stats["last"], stats["records"]))
        return acc

    def merge_accumulators(self, accs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        out = self.create_accumulator()
        for acc in accs:
            out["status"].update(acc["status"])
            out["lines"] += acc["lines"]
            out["doubled"] = sorted([*out["doubled"], *acc["doubled"]])[:MAX_DOUBLED]
            out["doubled_count"] += acc["doubled_count"]
            out["pages"] += acc["pages"]
        return out

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        return {**acc, "status": dict(acc["status"]), "pages": sorted(acc["pages"])}

    @staticmethod
    def from_json(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "status": Counter(data["status"]), "pages": [tuple(p) for p in data["pages"]]}


class Unextracted(beam.CombineFn):
    """A combiner whose output is its accumulator, so that a sub-run's can be merged with the others' later."""

    def __init__(self, fn: beam.CombineFn):
        self.fn = fn

    def create_accumulator(self) -> Any:
        return self.fn.create_accumulator()

    def add_input(self, acc: Any, element: Any) -> Any:
        return self.fn.add_input(acc, element)

    def merge_accumulators(self, accs: Iterable[Any]) -> Any:
        return self.fn.merge_accumulators(accs)

    def extract_output(self, acc: Any) -> Any:
        return acc


def account(acc: dict[str, Any], rows_in: int) -> dict[str, Any]:
    """rows in == stylized + skipped + errors, and every row line exactly once."""
    status = acc["status"]
    summary = {"rows": rows_in, "stylized": status.get("stylized", 0), "skipped": status.get("skipped", 0),
               "errors": status.get("error", 0), "doubled_lines": acc["doubled"], "missing_lines": []}
    if acc["lines"] != rows_in:
        # manifest lines are not 1..n (blank lines, header), so only the count can say something is missing
        summary["missing_lines"] = ["?"] * max(0, rows_in - acc["lines"])
    summary["balanced"] = (rows_in == summary["stylized"] + summary["skipped"] + summary["errors"]
                           and not acc["doubled_count"] and acc["lines"] == rows_in)
    return summary


def summary_line(s: dict[str, Any]) -> str:
    mark = "OK" if s.get("balanced") else "MISMATCH"
    return (f"rows in {s['rows']} = stylized {s['stylized']} + skipped {s['skipped']} + errors {s['errors']} "
            f"[{mark}]")


def part_path(output: str, run_id: str, kind: str, page: int) -> str:
    return storage.join(output, PARTS, run_id, f"{kind}-{page:06d}")


class WriteSheet(beam.DoFn):
    """(page, records) -> that sheet's parts of metrics.jsonl and errors.jsonl, and its contact sheet."""

    def __init__(self, output: str, run_id: str, thumb_size: int):
        self.output, self.run_id, self.thumb_size = output, run_id, thumb_size

    def process(self, keyed: tuple[int, Iterable[dict[str, Any]]], accounting: dict[str, Any]) -> Iterator[int]:
        page, records = keyed
        ordered = sorted(records, key=lambda r: (r["line"], str(r.get("id") or "")))
        done = "".join(jsonl_line(metrics_line(r)) for r in ordered if r["status"] != "error")
        errors = "".join(jsonl_line(r) for r in ordered if r["status"] == "error")
        storage.write_atomic(part_path(self.output, self.run_id, "metrics", page), done)
        storage.write_atomic(part_path(self.output, self.run_id, "errors", page), errors)
        pages = sorted(p[0] for p in accounting["pages"])
        first, last = ordered[0]["line"], ordered[-1]["line"]
        counts = Counter(r["status"] for r in ordered)
        line = (f"{len(ordered)} rows: {counts['stylized']} stylized, {counts['skipped']} skipped, "
                f"{counts['error']} errors")
        storage.write_atomic(storage.join(self.output, *report.sheet_rel(page).split("/")),
                             report.render_sheet(ordered, page, pages, line, self.thumb_size, (first, last)),
                             "text/html")
        yield page


def output_files(output: str) -> Iterator[tuple[str, tuple[str, Any]]]:
    """(id, ("file", rel path)) for every file under OUT's per-pair folders."""
    for sub in OUTPUT_DIRS:
        for name in storage.list_names(storage.join(output, sub)):
            yield name.rsplit(".", 1)[0], ("file", f"{sub}/{name}")


def claims(rec: dict[str, Any]) -> Iterator[tuple[str, tuple[str, Any]]]:
    """(id, ("claim", rel paths)) for the outputs a record stands for; a failed row claims every file of its id
    (an earlier output of a pair that failed this time is kept, not called an orphan)."""
    rid = rec.get("id")
    if not rid:
        return
    if rec["status"] == "error":
        yield rid, ("claim", ("*",))
        return
    yield rid, ("claim", tuple(rec[k] for k in ("image", "metrics", "thumb") if rec.get(k)))


def orphans_of(keyed: tuple[str, Iterable[tuple[str, Any]]]) -> Iterator[str]:
    _, items = keyed
    files: list[str] = []
    claimed: set[str] = set()
    for kind, rel in items:
        if kind == "file":
            files.append(rel)
        else:
            claimed.update(rel)
    if "*" in claimed:
        return
    yield from (rel for rel in files if rel not in claimed)


class WriteOrphans(beam.DoFn):
    """(bucket, orphan paths) -> moved aside (with --prune) and listed in that bucket's part of orphans.txt."""

    def __init__(self, output: str, run_id: str, moved_to: str):
        self.output, self.run_id, self.moved_to = output, run_id, moved_to

    def process(self, keyed: tuple[str, Iterable[str]]) -> Iterator[tuple[str, int]]:
        bucket, rels = keyed
        yield bucket, write_orphans(self.output, self.run_id, bucket, rels, self.moved_to)


def write_orphans(output: str, run_id: str, bucket: str, rels: Iterable[str], moved_to: str) -> int:
    """Orphan paths -> moved aside (with ``moved_to``) and listed, sorted, in the part ``orphans-<bucket>``."""
    lines = []
    for rel in sorted(rels):
        if moved_to:
            storage.move(storage.join(output, *rel.split("/")),
                         storage.join(output, *moved_to.split("/"), *rel.split("/")))
            rel = f"{moved_to}/{rel}"
        lines.append(rel + "\n")
    storage.write_atomic(storage.join(output, PARTS, run_id, f"orphans-{bucket}"), "".join(lines))
    return len(lines)


def _bucket(rel: str) -> tuple[str, str]:
    sub, name = rel.split("/", 1)
    return f"{sub}.{name[:2].encode().hex()}", rel  # a prefix: buckets in key order list the paths in sorted order


def finish_run(output: str, source: str, run_id: str, thumb_size: int, image_format: str, moved_to: str, rows_in: int,
               accounting: dict[str, Any], stats: dict[str, Any], sheets: list[int],
               orphans: list[tuple[str, int]]) -> dict[str, Any]:
    """The run files from the parts and the combined statistics; then the accounting check (AccountingError)."""
    out = output
    summary = account(accounting, rows_in)
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    n_orphans = sum(n for _, n in orphans)
    summary.update(source=storage.redact(source), output=storage.redact(out), finished=finished,
                   orphans=n_orphans, pruned_to=moved_to if n_orphans else "", image_format=image_format,
                   sheets=len(sheets))
    pages = sorted(sheets)
    for kind, name in (("metrics", "metrics.jsonl"), ("errors", "errors.jsonl")):
        parts = [part_path(out, run_id, kind, p) for p in pages]
        storage.write_stream(storage.join(out, name), lambda parts=parts: _concat(parts), "application/x-ndjson")
    orphan_parts = [storage.join(out, PARTS, run_id, f"orphans-{b}") for b, _ in sorted(orphans)]
    storage.write_stream(storage.join(out, ORPHANS), lambda: _concat(orphan_parts), "text/plain")
    storage.write_atomic(storage.join(out, "report.html"),
                         report.render_index(summary, stats, accounting["pages"], thumb_size), "text/html")
    storage.write_atomic(storage.join(out, "summary.json"), json.dumps(summary, indent=1, sort_keys=True),
                         "application/json")
    remove_stale_sheets(out, pages)
    for sub in (*OUTPUT_DIRS, "models", report.SOURCES, report.SHEETS):
        storage.remove_stale_temps(storage.join(out, sub))
    storage.remove_tree(storage.join(out, PARTS))  # this run's parts, and any a killed run left
    LOG.info("run summary: %s", summary_line(summary))
    if not summary["balanced"]:
        raise AccountingError(f"accounting does not balance: {summary_line(summary)}; "
                              f"lines missing {summary['missing_lines'][:20]}, "
                              f"doubled {summary['doubled_lines'][:20]}")
    return summary


def remove_stale_sheets(output: str, pages: list[int]) -> None:
    """Delete the contact sheets an earlier, longer run left past this run's last page: they are run files."""
    keep = {storage.basename(report.sheet_rel(p)) for p in pages}
    folder = storage.join(output, report.SHEETS)
    stale = [storage.join(folder, n) for n in storage.list_names(folder) if _SHEET_NAME.match(n) and n not in keep]
    storage.remove(stale)


def _concat(parts: list[str]) -> Iterator[bytes]:
    for part in parts:
        with storage.open_read(part) as f:
            while chunk := f.read(1 << 20):
                yield chunk


class Finish(beam.DoFn):
    """The run files, once every sheet and orphan part is written (:func:`finish_run`)."""

    def __init__(self, output: str, source: str, run_id: str, thumb_size: int, image_format: str, moved_to: str):
        self.output, self.source, self.run_id, self.thumb_size = output, source, run_id, thumb_size
        self.image_format, self.moved_to = image_format, moved_to

    def process(self, _: Any, rows_in: int, accounting: dict[str, Any], stats: dict[str, Any], sheets: list[int],
                orphans: list[tuple[str, int]]) -> Iterator[dict[str, Any]]:
        yield finish_run(self.output, self.source, self.run_id, self.thumb_size, self.image_format, self.moved_to,
                         rows_in, accounting, stats, sheets, orphans)


def sub_run_path(output: str, run_id: str, kind: str, sub_run: int) -> str:
    return storage.join(output, PARTS, run_id, f"sub-run-{sub_run:06d}.{kind}")


class SaveSubRun(beam.DoFn):
    """What a sub-run leaves for the final merge: its row count, its combiners' accumulators and its sheets
    (one JSON file), and the outputs its rows claim (JSON Lines)."""

    def __init__(self, output: str, run_id: str, sub_run: int):
        self.output, self.run_id, self.sub_run = output, run_id, sub_run

    def process(self, _: Any, rows_in: int, accounting: dict[str, Any], stats: dict[str, Any], sheets: list[int],
                claimed: list[tuple[str, tuple[str, Any]]]) -> Iterator[str]:
        lines = "".join(json.dumps([rid, kind, rel]) + "\n" for rid, (kind, rel) in claimed)
        storage.write_atomic(sub_run_path(self.output, self.run_id, "claims.jsonl", self.sub_run), lines)
        part = {"rows_in": rows_in, "accounting": accounting, "stats": stats, "sheets": sheets}
        path = sub_run_path(self.output, self.run_id, "json", self.sub_run)
        storage.write_atomic(path, json.dumps(part), "application/json")
        yield path


def merge_sub_runs(output: str, source: str, run_id: str, sub_runs: int, thumb_size: int, page_rows: int,
                   worst: int, image_format: str, moved_to: str) -> dict[str, Any]:
    """The run files of a run made of sub-runs (each left by :class:`SaveSubRun`): their accumulators merged,
    the sheets' links made the whole run's, the orphans found; then :func:`finish_run`."""
    acc_fn, stats_fn = Accounting(), RunStats(page_rows, worst)
    acc, stats, rows_in, sheets = acc_fn.create_accumulator(), stats_fn.create_accumulator(), 0, []
    for k in range(sub_runs):
        part = json.loads(storage.read_bytes(sub_run_path(output, run_id, "json", k)))
        rows_in += part["rows_in"]
        sheets += part["sheets"]
        acc = acc_fn.merge_accumulators([acc, Accounting.from_json(part["accounting"])])
        stats = stats_fn.merge_accumulators([stats, RunStats.from_json(part["stats"])])
    pages = sorted(sheets)
    for page in pages:
        path = storage.join(output, *report.sheet_rel(page).split("/"))
        html = report.renav_sheet(storage.read_bytes(path).decode("utf-8"), page, pages)
        storage.write_atomic(path, html, "text/html")
    claim_parts = [sub_run_path(output, run_id, "claims.jsonl", k) for k in range(sub_runs)]
    orphans = find_orphans(output, run_id, claim_parts, rows_in, moved_to)
    return finish_run(output, source, run_id, thumb_size, image_format, moved_to, rows_in,
                      acc_fn.extract_output(acc), stats_fn.extract_output(stats), pages, [("all", orphans)])


def find_orphans(output: str, run_id: str, claim_parts: list[str], rows: int, moved_to: str,
                 ids_per_bucket: int = 50_000) -> int:
    """The files under OUT's per-pair folders that no claim names (as :func:`orphans_of` judges), moved aside
    with ``moved_to`` and listed in the part ``orphans-all``; the claims and the listing go through local
    bucket files by id, so memory holds one bucket, not the run."""
    buckets = max(1, math.ceil(rows / ids_per_bucket))
    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nst-orphans-") as tmp:
        names = [os.path.join(tmp, f"{b}.jsonl") for b in range(buckets)]
        sinks = [open(n, "w", encoding="utf-8") for n in names]  # noqa: SIM115 - closed below, all together
        try:
            def put(rid: str, kind: str, rel: Any) -> None:
                sinks[zlib.crc32(rid.encode("utf-8", "surrogatepass")) % buckets].write(json.dumps([rid, kind, rel])
                                                                                       + "\n")
            for part in claim_parts:
                with storage.open_read(part) as f:
                    for line in io.TextIOWrapper(f, encoding="utf-8"):
                        put(*json.loads(line))
            for rid, (kind, rel) in output_files(output):
                put(rid, kind, rel)
        finally:
            for sink in sinks:
                sink.close()
        for name in names:
            by_id: dict[str, list[tuple[str, Any]]] = {}
            with open(name, encoding="utf-8") as f:
                for line in f:
                    rid, kind, rel = json.loads(line)
                    by_id.setdefault(rid, []).append((kind, rel))
            for item in by_id.items():
                found.extend(orphans_of(item))
    return write_orphans(output, run_id, "all", found, moved_to)


class WriteRunFiles(beam.PTransform):
    """Outcome records -> every run file under OUT (see the module's docstring); returns the summary.  With
    ``sub_run`` (a local run's share of the lines) it leaves that share's parts for :func:`merge_sub_runs`
    instead, and returns their path."""

    def __init__(self, output: str, source: str, run_id: str, rows_in: beam.PCollection, thumb_size: int,
                 page_rows: int, worst: int, image_format: str, moved_to: str = "", sub_run: int | None = None):
        super().__init__()
        self.output, self.source, self.run_id, self.rows_in = output, source, run_id, rows_in
        self.thumb_size, self.page_rows, self.worst = thumb_size, page_rows, worst
        self.image_format, self.moved_to, self.sub_run = image_format, moved_to, sub_run

    def expand(self, outcomes: beam.PCollection) -> beam.PCollection:
        out, run_id, rows = self.output, self.run_id, self.page_rows
        part = self.sub_run is not None
        sheets = (outcomes | "KeyBySheet" >> beam.Map(lambda r: (page_of(r["line"], rows), r))
                  | "GroupBySheet" >> beam.GroupByKey())
        accounting = (sheets | "SheetStats" >> beam.Map(page_stats)
                      | "Accounting" >> beam.CombineGlobally(Unextracted(Accounting()) if part else Accounting()))
        stats = outcomes | "RunStats" >> beam.CombineGlobally(Unextracted(RunStats(rows, self.worst)) if part
                                                              else RunStats(rows, self.worst))
        written = sheets | "WriteSheets" >> beam.ParDo(WriteSheet(out, run_id, self.thumb_size),
                                                       accounting=beam.pvalue.AsSingleton(accounting))
        claimed = outcomes | "Claims" >> beam.FlatMap(claims)
        if part:
            return (outcomes.pipeline | "SubRunEnd" >> beam.Create([None])
                    | "SaveSubRun" >> beam.ParDo(SaveSubRun(out, run_id, self.sub_run),
                                                 rows_in=beam.pvalue.AsSingleton(self.rows_in),
                                                 accounting=beam.pvalue.AsSingleton(accounting),
                                                 stats=beam.pvalue.AsSingleton(stats),
                                                 sheets=beam.pvalue.AsList(written),
                                                 claimed=beam.pvalue.AsList(claimed)))
        present = (outcomes.pipeline | "OutputRoot" >> beam.Create([out])
                   | "ListOutputs" >> beam.FlatMap(output_files))
        orphans = ((claimed, present) | "ClaimsAndFiles" >> beam.Flatten() | "ById" >> beam.GroupByKey()
                   | "Orphans" >> beam.FlatMap(orphans_of) | "OrphanBuckets" >> beam.Map(_bucket)
                   | "GroupOrphans" >> beam.GroupByKey()
                   | "WriteOrphans" >> beam.ParDo(WriteOrphans(out, run_id, self.moved_to)))
        return (outcomes.pipeline | "RunEnd" >> beam.Create([None])
                | "Finish" >> beam.ParDo(Finish(out, self.source, run_id, self.thumb_size, self.image_format,
                                                self.moved_to),
                                         rows_in=beam.pvalue.AsSingleton(self.rows_in),
                                         accounting=beam.pvalue.AsSingleton(accounting),
                                         stats=beam.pvalue.AsSingleton(stats),
                                         sheets=beam.pvalue.AsList(written), orphans=beam.pvalue.AsList(orphans)))
