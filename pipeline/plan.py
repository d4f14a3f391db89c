"""nst-pipeline --plan: what a run would do, without doing it.

Reads the manifest (or the cross-mode globs) and OUT with the same checks the run's steps make
(:meth:`~pipeline.transforms.PairDoFn.check_done`, fast mode's network choice) and writes nothing
under OUT: the counts and an estimate go to stdout, one line per row to a JSON Lines file elsewhere.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from nst_core import InputError, StyleOptions
from pipeline import storage
from pipeline.fastmode import FastConfig, as_fast, by_training_options, goes_fast, network_for
from pipeline.manifest import Pair, RowError, parse
from pipeline.resources import WorkerResources
from pipeline.runfiles import output_files
from pipeline.transforms import NEW, Inputs, PairDoFn, cross_rows, pair_inputs

IO_THREADS = 16  # done checks are reads and stats: on gs:// each is a round trip, so overlap them


def rows_of(opts: Any, base: StyleOptions) -> list[Pair | RowError]:
    if opts.manifest:
        return list(parse(storage.read_bytes(opts.manifest), opts.manifest, base))
    return cross_rows(opts.contents, opts.styles, base, opts.masks)


def _route(pairs: list[Pair], cfg: FastConfig) -> tuple[dict[str, list[Pair]], list[Pair]]:
    """(style -> pairs that go fast, pairs that are optimized), as the run's RouteStyles step decides."""
    if cfg.mode == "optimize":
        return {}, pairs
    by_style: dict[str, list[Pair]] = {}
    optimize = []
    for pair in pairs:
        if len(pair.styles) == 1:
            by_style.setdefault(pair.styles[0], []).append(pair)
        else:
            optimize.append(pair)
    fast = {}
    for style, members in by_style.items():
        if goes_fast(cfg.mode, len(members), cfg.min_rows):
            fast[style] = members
        else:
            optimize += members
    return fast, optimize


def make_plan(opts: Any, base: StyleOptions) -> dict[str, Any]:
    """Every row's planned outcome; returns the plan's summary (and writes the listing to ``plan_file``)."""
    items = rows_of(opts, base)
    cfg = FastConfig.from_options(opts)
    checker = PairDoFn(opts.output, base)
    resources = WorkerResources(base)  # loads nothing but the --models index and style bytes it is asked for
    entries: list[dict[str, Any]] = []
    pairs = [i for i in items if isinstance(i, Pair)]
    for err in (i for i in items if isinstance(i, RowError)):
        entries.append({"line": err.line, "id": err.id, "plan": "error", "reason": err.reason})
    fast_groups, optimize = _route(pairs, cfg)
    to_check: list[tuple[Pair, str]] = [(p, "optimize") for p in optimize]
    trainings: list[dict[str, Any]] = []
    for style, members in fast_groups.items():
        from nst_core.fast import style_sha256  # TensorFlow: only for a plan with fast rows

        try:
            sha = style_sha256(Inputs(resources).get(style, "style", cached=True))
        except (InputError, OSError) as e:
            entries += [{"line": p.line, "id": p.id, "plan": "error", "reason": str(e)} for p in members]
            continue
        for options, group in by_training_options(members, cfg).items():
            path, name, given = network_for(sha, options, cfg, opts.output, resources)
            fast_pairs = as_fast(group, name)
            to_check += [(p, "fast") for p in fast_pairs]
            if not given and not storage.exists(path):
                trainings.append({"style": style, "network": name, "rows": len(group),
                                  "contents": min(cfg.contents, len({p.content for p in group}))})
    with ThreadPoolExecutor(IO_THREADS) as pool:
        checks = list(pool.map(lambda pm: (pm, checker.check_done(pm[0])), to_check))
    seconds: list[float] = []
    for (pair, mode), (stored, why) in checks:
        entry = {"line": pair.line, "id": pair.id, "mode": mode, "content": pair.content, "styles": list(pair.styles)}
        missing = [path for path in pair_inputs(pair) if not storage.exists(path)] if stored is None else []
        if stored is not None:
            entries.append({**entry, "plan": "skip"})
            if isinstance(stored.get("seconds"), (int, float)):
                seconds.append(float(stored["seconds"]))
        elif missing:
            entries.append({**entry, "plan": "error", "reason": f"{storage.redact(missing[0])}: file not found"})
        else:
            entries.append({**entry, "plan": "stylize", "reason": why})
    # trainings: a network that a fast group with nothing left to do does not need
    pending_fast = {e["id"] for e in entries if e["plan"] == "stylize" and e.get("mode") == "fast"}
    trainings = [t for t in trainings if any(p.id in pending_fast for p in fast_groups.get(t["style"], []))]
    entries.sort(key=lambda e: (e["line"], str(e["id"])))
    claimed = {e["id"] for e in entries if e.get("id")}
    summary = summarize(entries, trainings, seconds)
    summary["orphans"] = sum(1 for pid, _ in output_files(opts.output) if pid not in claimed)  # as the run counts
    path = opts.plan_file or os.path.join(
        tempfile.gettempdir(), f"nst-plan-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)
    summary["plan_file"] = path
    return summary


def summarize(entries: Iterable[dict[str, Any]], trainings: list[dict[str, Any]],
              seconds: list[float]) -> dict[str, Any]:
    entries = list(entries)
    plan = Counter(e["plan"] for e in entries)
    why = Counter("new" if e.get("reason") == NEW else "redo" for e in entries if e["plan"] == "stylize")
    per_pair = statistics.median(seconds) if seconds else None
    return {"rows": len(entries), "stylize": plan["stylize"], "new": why["new"], "redo": why["redo"],
            "skip": plan["skip"], "error": plan["error"], "trainings": trainings,
            "seconds_per_pair": per_pair, "timed_pairs": len(seconds),
            "estimate_seconds": per_pair * plan["stylize"] if per_pair is not None else None}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def report_lines(summary: dict[str, Any], output: str) -> list[str]:
    """What ``nst-pipeline --plan`` prints."""
    s = summary
    lines = [f"plan for {storage.redact(output)}: rows {s['rows']} = stylize {s['stylize']} (new {s['new']}, "
             f"redo {s['redo']}) + skip {s['skip']} + error {s['error']}"]
    for t in s["trainings"]:
        lines.append(f"train style network {t['network']} for {storage.redact(t['style'])} on {t['contents']} "
                     f"content(s) ({t['rows']} rows)")
    if s["estimate_seconds"] is not None:
        lines.append(f"estimate: {_duration(s['estimate_seconds'])} of stylizing on one worker, at the median "
                     f"{s['seconds_per_pair']:.1f} s per pair of the {s['timed_pairs']} done in OUT"
                     + (" (plus the trainings)" if s["trainings"] else ""))
    elif s["stylize"]:
        lines.append("estimate: none yet (no pair of this manifest is done in OUT to time it by)")
    if s["orphans"]:
        lines.append(f"{s['orphans']} output file(s) in OUT that no row claims (a run lists them in orphans.txt; "
                     "--prune moves them aside)")
    lines.append(f"every row's plan: {s['plan_file']}")
    return lines
