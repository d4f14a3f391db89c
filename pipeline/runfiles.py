"""The end of a run, streamed: no step holds every outcome record of the run.

    outcomes -> key by sheet (PAGE_ROWS manifest lines each) -> GroupByKey -> per sheet: sorted records
                 -> _parts/<run>/metrics-NNNN.jsonl, errors-NNNN.jsonl and sheets/NNNN.html
                 -> page stats (rows, lines, doubled lines) -> combined: the accounting
    outcomes -> RunStats combiner: histograms, errors by reason, groups by style, the worst pairs (bounded)
    files under images/, metrics/, thumbs/ x the outputs the rows claim -> orphans (moved aside with --prune)
    -> Finish (one small element): metrics.jsonl and errors.jsonl as the concatenation of the sheet parts in
       page order (streamed, so they stay in line order), report.html, orphans.txt, summary.json; then the
       accounting check, which fails the run loudly.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import re
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
        pages = [p[0] for p in accounting["pages"]]
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
        lines = []
        for rel in sorted(rels):
            if self.moved_to:
                storage.move(storage.join(self.output, *rel.split("/")),
                             storage.join(self.output, *self.moved_to.split("/"), *rel.split("/")))
                rel = f"{self.moved_to}/{rel}"
            lines.append(rel + "\n")
        storage.write_atomic(storage.join(self.output, PARTS, self.run_id, f"orphans-{bucket}"), "".join(lines))
        yield bucket, len(lines)


def _bucket(rel: str) -> tuple[str, str]:
    sub, name = rel.split("/", 1)
    return f"{sub}.{name[:2].encode().hex()}", rel  # a prefix: buckets in key order list the paths in sorted order


class Finish(beam.DoFn):
    """The run files from the parts and the combined statistics; then the accounting check."""

    def __init__(self, output: str, source: str, run_id: str, thumb_size: int, image_format: str, moved_to: str):
        self.output, self.source, self.run_id, self.thumb_size = output, source, run_id, thumb_size
        self.image_format, self.moved_to = image_format, moved_to

    def process(self, _: Any, rows_in: int, accounting: dict[str, Any], stats: dict[str, Any], sheets: list[int],
                orphans: list[tuple[str, int]]) -> Iterator[dict[str, Any]]:
        out = self.output
        summary = account(accounting, rows_in)
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        n_orphans = sum(n for _, n in orphans)
        summary.update(source=storage.redact(self.source), output=storage.redact(out), finished=finished,
                       orphans=n_orphans, pruned_to=self.moved_to if n_orphans else "", image_format=self.image_format,
                       sheets=len(sheets))
        pages = sorted(sheets)
        for kind, name in (("metrics", "metrics.jsonl"), ("errors", "errors.jsonl")):
            parts = [part_path(out, self.run_id, kind, p) for p in pages]
            storage.write_stream(storage.join(out, name), lambda parts=parts: self._concat(parts),
                                 "application/x-ndjson")
        orphan_parts = [storage.join(out, PARTS, self.run_id, f"orphans-{b}") for b, _ in sorted(orphans)]
        storage.write_stream(storage.join(out, ORPHANS), lambda: self._concat(orphan_parts), "text/plain")
        storage.write_atomic(storage.join(out, "report.html"),
                             report.render_index(summary, stats, accounting["pages"], self.thumb_size), "text/html")
        storage.write_atomic(storage.join(out, "summary.json"), json.dumps(summary, indent=1, sort_keys=True),
                             "application/json")
        for sub in (*OUTPUT_DIRS, "models", report.SOURCES, report.SHEETS):
            storage.remove_stale_temps(storage.join(out, sub))
        storage.remove_tree(storage.join(out, PARTS))  # this run's parts, and any a killed run left
        LOG.info("run summary: %s", summary_line(summary))
        if not summary["balanced"]:
            raise AccountingError(f"accounting does not balance: {summary_line(summary)}; "
                                  f"lines missing {summary['missing_lines'][:20]}, "
                                  f"doubled {summary['doubled_lines'][:20]}")
        yield summary

    @staticmethod
    def _concat(parts: list[str]) -> Iterator[bytes]:
        for part in parts:
            with storage.open_read(part) as f:
                while chunk := f.read(1 << 20):
                    yield chunk


class WriteRunFiles(beam.PTransform):
    """Outcome records -> every run file under OUT (see the module's docstring); returns the summary."""

    def __init__(self, output: str, source: str, run_id: str, rows_in: beam.PCollection, thumb_size: int,
                 page_rows: int, worst: int, image_format: str, moved_to: str = ""):
        super().__init__()
        self.output, self.source, self.run_id, self.rows_in = output, source, run_id, rows_in
        self.thumb_size, self.page_rows, self.worst = thumb_size, page_rows, worst
        self.image_format, self.moved_to = image_format, moved_to

    def expand(self, outcomes: beam.PCollection) -> beam.PCollection:
        out, run_id, rows = self.output, self.run_id, self.page_rows
        sheets = (outcomes | "KeyBySheet" >> beam.Map(lambda r: (page_of(r["line"], rows), r))
                  | "GroupBySheet" >> beam.GroupByKey())
        accounting = (sheets | "SheetStats" >> beam.Map(page_stats)
                      | "Accounting" >> beam.CombineGlobally(Accounting()))
        stats = outcomes | "RunStats" >> beam.CombineGlobally(RunStats(rows, self.worst))
        written = sheets | "WriteSheets" >> beam.ParDo(WriteSheet(out, run_id, self.thumb_size),
                                                       accounting=beam.pvalue.AsSingleton(accounting))
        claimed = outcomes | "Claims" >> beam.FlatMap(claims)
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
