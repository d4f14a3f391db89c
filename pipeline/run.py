"""nst-pipeline: build and run the Beam graph (DirectRunner locally, DataflowRunner by flags).

    nst-pipeline --manifest samples/manifest.csv --output out/demo
    nst-pipeline --contents 'gs://b/products/*.jpg' --styles 'gs://b/styles/*.jpg' --output gs://b/out \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp

Graph: rows (manifest or cross product) -> Pair | RowError -> Reshuffle -> Stylize (skipped / stylized /
error) -> run files, streamed (pipeline.runfiles: sharded by contact sheet, combined statistics, a final
merge) + accounting check; a launcher thread prints progress every --progress_every seconds.
A local run of more than --local_run_rows lines runs that graph once per share of the lines (sub-runs,
one after another), each leaving its parts, then merges them (pipeline.runfiles.merge_sub_runs): Beam's
local runner holds a run's every row in memory, a sub-run only its own.
With --mode fast|auto the pairs are first grouped by
style: a fast group (every single-style group in fast mode; in auto mode those with at least
--fast_min_rows rows) -> StyleNetworks (one network per style: from --models, from OUT/models/ of an
earlier run, or trained now; pairs already done are skipped first) -> Reshuffle -> FastStylize
(skipped / stylized / error); the other pairs (blended styles, small groups) take the optimize path.
Exit codes: 0 every row stylized or skipped, 3 some rows failed (see errors.jsonl), 2 bad usage or
manifest, 1 the run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import traceback
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricResults, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.utils.shared import Shared

from nst_core import InputError, NSTError, StyleOptions, weights
from nst_core import options as engine_options
from pipeline import manifest, plan, progress, storage
from pipeline.fastmode import FastConfig, FastStylizeDoFn, StyleNetworkDoFn, key_by_style, route_groups
from pipeline.options import NSTPipelineOptions, add_flags
from pipeline.runfiles import WriteRunFiles, merge_sub_runs, summary_line
from pipeline.transforms import (
    NS,
    CrossPairs,
    ReadManifest,
    RecordRowError,
    SourceThumbnail,
    StylizeDoFn,
    source_paths,
    split_rows,
)

LOG = logging.getLogger("pipeline")
COUNTERS = ("rows_read", "pairs_stylized", "pairs_skipped", "pairs_failed", "model_loads", "style_cache_hits",
            "style_cache_misses", "network_trainings", "networks_loaded")


class UsageError(ValueError):
    """Bad flags, options or manifest: nothing ran."""


def unknown_flags(options: PipelineOptions) -> list[str]:
    """Flags no PipelineOptions class knows (Beam only logs and drops them; a typo'd --stpes must not
    silently run the default schedule over a catalog): what Beam keeps when told to retain unknown ones."""
    with _quiet(logging.getLogger("apache_beam.options.pipeline_options")):  # its own "Discarding" line
        known = options.get_all_options()
    return [f"--{k}" for k in options.get_all_options(retain_unknown_options=True) if k not in known]


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def resolve_options(options: PipelineOptions) -> tuple[NSTPipelineOptions, StyleOptions]:
    """Checks the flags and the input before any worker starts; UsageError says what is wrong."""
    unknown = unknown_flags(options)
    if unknown:
        raise UsageError(f"unknown flag(s) {', '.join(unknown)} (see --help)")
    opts = options.view_as(NSTPipelineOptions)
    if not opts.output:
        raise UsageError("--output is required (a local folder or gs://bucket/prefix)")
    if options.view_as(TestOptions).dry_run and local_runner(options) is not None:
        raise UsageError("--dry_run is Beam's flag and would run the whole job here; --plan shows what a run "
                         "would do without doing it")
    check_output(opts.output)
    check_gpu_request(options, opts)
    cross_mode = bool(opts.contents or opts.styles)
    if opts.manifest and cross_mode:
        raise UsageError("give either --manifest or --contents with --styles, not both")
    if cross_mode and not (opts.contents and opts.styles):
        raise UsageError("cross mode needs both --contents and --styles")
    if not opts.manifest and not cross_mode:
        raise UsageError("give --manifest, or --contents and --styles")
    if opts.masks and not cross_mode:
        raise UsageError("--masks: only in cross mode (--contents with --styles); a manifest names each row's mask "
                         "in its mask column")
    if opts.masks and storage.is_local(opts.masks):
        opts.masks = os.path.abspath(opts.masks)  # worker processes may not share our cwd
    if (opts.thumbnail_size or 0) < 0 or (opts.report_worst or 0) < 0:
        raise UsageError("--thumbnail_size and --report_worst must be >= 0")
    if opts.report_sheet_rows is not None and not 1 <= opts.report_sheet_rows <= 10000:
        raise UsageError(f"--report_sheet_rows {opts.report_sheet_rows}: expected 1..10000 lines per sheet")
    if opts.local_run_rows is not None and opts.local_run_rows < 0:
        raise UsageError(f"--local_run_rows {opts.local_run_rows}: expected lines >= 0 (0: one run)")
    if opts.progress_every is not None and not opts.progress_every >= 0:
        raise UsageError(f"--progress_every {opts.progress_every}: expected seconds >= 0 (0: no progress lines)")
    try:
        base = opts.style_options()
        FastConfig.from_options(opts)
    except InputError as e:
        raise UsageError(str(e)) from None
    for name in ("manifest", "output", "models"):
        value = getattr(opts, name)
        if value and storage.is_local(value):
            setattr(opts, name, os.path.abspath(value))  # worker processes may not share our cwd
    if opts.models:
        check_models(opts.models)
    try:
        weights.check_source(base.weights)
    except NSTError as e:
        raise UsageError(f"--weights: {e}") from None
    try:
        if opts.manifest:
            manifest.check_head(opts.manifest)
        else:
            for flag in ("contents", "styles"):
                patterns = [os.path.abspath(g) if storage.is_local(g) else g for g in getattr(opts, flag)]
                setattr(opts, flag, list(dict.fromkeys(patterns)))
                for pattern in patterns:
                    if not storage.match(pattern):
                        raise manifest.ManifestError(f"--{flag} {pattern}: matched no files")
    except manifest.ManifestError as e:
        raise UsageError(str(e)) from None
    return opts, base


def check_gpu_request(options: PipelineOptions, opts: NSTPipelineOptions) -> None:
    """--require_gpu must be satisfiable: on a local run this machine needs a GPU (checked now, before any
    work); a Dataflow job must ask for one (a worker_accelerator service option or --accelerator)."""
    if not opts.require_gpu:
        return
    if local_runner(options) is not None:
        from pipeline.resources import WorkerSetupError, device_report

        try:
            device_report(require_gpu=True)
        except WorkerSetupError as e:
            raise UsageError(str(e)) from None
        return
    given = options.get_all_options()
    requests = [*(given.get("dataflow_service_options") or []), *(given.get("experiments") or [])]
    if not opts.accelerator and not any("worker_accelerator=" in r for r in requests):
        raise UsageError("--require_gpu: the job asks for no GPU (no worker_accelerator service option or "
                         "experiment, no --accelerator): see deploy/gpu_profiles.py")


def check_output(output: str) -> None:
    """A local --output must be a folder, or creatable as one, that this user can write (UsageError)."""
    if not storage.is_local(output):
        return
    path = os.path.abspath(output)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--output {output}: exists and is not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--output {output}: {existing} is a file, so the folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {output}: {existing} is not writable")


def check_models(models: str) -> None:
    """A given --models must be a readable folder holding style networks: training them again costs minutes."""
    if storage.is_local(models):
        if not os.path.isdir(models):
            raise UsageError(f"--models {models}: no such folder")
        if not os.access(models, os.R_OK | os.X_OK):
            raise UsageError(f"--models {models}: not readable")
    if not storage.match(storage.join(models, "*.keras")):
        raise UsageError(f"--models {models}: holds no .keras style networks (made by nst-train-style or saved "
                         "under OUT/models by a fast run)")


def new_run_id() -> str:
    """A run's name for its progress and part files: its start time (also the --prune folder) and a nonce."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def build(p: beam.Pipeline, opts: NSTPipelineOptions, base: StyleOptions, run_id: str | None = None,
          lines: tuple[int, int] | None = None, sub_run: int | None = None,
          shared: Shared | None = None) -> beam.PCollection:
    """The graph; returns the PCollection holding the run summary.  ``run_id`` names the run's progress files
    (none are written without one) and its temporary parts.  With ``lines`` and ``sub_run`` it is one sub-run:
    the rows on those lines, leaving its parts for :func:`pipeline.runfiles.merge_sub_runs`."""
    parts_id = run_id or new_run_id()
    every = opts.progress_every if opts.progress_every is not None else 10.0
    track = run_id if run_id and every > 0 else ""
    source = source_of(opts)
    if opts.manifest:
        rows = (p | "ManifestPath" >> beam.Create([opts.manifest])
                | "ReadManifest" >> beam.ParDo(ReadManifest(base, opts.output, track, lines)))
    else:
        rows = (p | "Globs" >> beam.Create([(opts.contents, opts.styles, opts.masks)])
                | "CrossProduct" >> beam.ParDo(CrossPairs(base, opts.output, track, lines)))
    rows_in = rows | "CountRows" >> beam.combiners.Count.Globally()
    split = rows | "SplitRows" >> beam.FlatMap(split_rows).with_outputs("errors", main="pairs")
    thumb = thumb_size(opts)
    fast_cfg = FastConfig.from_options(opts)
    shared = shared or Shared()  # one WorkerResources per worker process, for every stylizing step

    gpu_kw = {"require_gpu": bool(opts.require_gpu)}

    def gpu(step: beam.ParDo) -> beam.ParDo:
        step.fn.with_progress(opts.output, track, every)
        return step.with_resource_hints(accelerator=opts.accelerator) if opts.accelerator else step

    to_optimize, fast_outcomes = split.pairs, []
    if fast_cfg.mode != "optimize":
        by_style = split.pairs | "KeyByStyle" >> beam.FlatMap(key_by_style).with_outputs("optimize", main="keyed")
        routed = (by_style.keyed | "GroupByStyle" >> beam.GroupByKey()
                  | "RouteStyles" >> beam.FlatMap(route_groups, fast_cfg.mode, fast_cfg.min_rows)
                  .with_outputs("optimize", main="fast"))
        networks = (routed.fast | "StyleNetworks" >> gpu(beam.ParDo(StyleNetworkDoFn(opts.output, fast_cfg, base,
                                                                                      shared, thumb, **gpu_kw)))
                    .with_outputs("outcomes", main="work"))
        fast_stylized = (networks.work | "SpreadFastPairs" >> beam.Reshuffle()
                         | "FastStylize" >> gpu(beam.ParDo(FastStylizeDoFn(opts.output, base, shared, thumb,
                                                                         **gpu_kw))))
        fast_outcomes = [networks.outcomes, fast_stylized]
        to_optimize = (by_style.optimize, routed.optimize) | "OptimizePairs" >> beam.Flatten()
    pairs = to_optimize | "SpreadPairs" >> beam.Reshuffle()
    stylized = pairs | "Stylize" >> gpu(beam.ParDo(StylizeDoFn(opts.output, base, shared, thumb, **gpu_kw)))
    bad_rows = split.errors | "RecordRowErrors" >> beam.ParDo(RecordRowError().with_progress(opts.output, track, every))
    outcomes = (stylized, bad_rows, *fast_outcomes) | "AllOutcomes" >> beam.Flatten()
    if thumb:
        _ = (split.pairs | "SourcePaths" >> beam.FlatMap(source_paths)
             | "DistinctSources" >> beam.Distinct()
             | "SourceThumbnails" >> beam.ParDo(SourceThumbnail(opts.output, thumb)))
    return outcomes | "WriteRunFiles" >> WriteRunFiles(opts.output, source, parts_id, rows_in, thumb,
                                                       sheet_rows(opts), report_worst(opts), base.image_format,
                                                       moved_to(opts, parts_id), sub_run)


def thumb_size(opts: NSTPipelineOptions) -> int:
    return opts.thumbnail_size if opts.thumbnail_size is not None else 160


def sheet_rows(opts: NSTPipelineOptions) -> int:
    return opts.report_sheet_rows or 200


def report_worst(opts: NSTPipelineOptions) -> int:
    return opts.report_worst if opts.report_worst is not None else 24


def moved_to(opts: NSTPipelineOptions, run_id: str) -> str:
    return f"pruned/{run_id.split('-')[0]}" if opts.prune else ""


def source_of(opts: NSTPipelineOptions) -> str:
    return opts.manifest or f"{', '.join(opts.contents)} x {', '.join(opts.styles)}"


def local_runner(options: PipelineOptions) -> str | None:
    """``FnApiRunner`` (one of Beam's public runner names) for a DirectRunner run; None for other runners.

    Beam 2.77's DirectRunner first tries Prism, a Go binary it downloads from GitHub at run time,
    and falls back to the FnApiRunner when that fails: a network attempt on every local run (and a
    wait where the network hangs rather than refuses).  The FnApiRunner reads --direct_running_mode
    and --direct_num_workers itself; its workers get no pipeline options, which they do not need
    (ours travel inside the DoFns).
    """
    if (options.view_as(StandardOptions).runner or "DirectRunner") not in ("DirectRunner", "direct"):
        return None
    return "FnApiRunner"


def run(argv: Sequence[str] | None = None, test_pipeline: beam.Pipeline | None = None,
        wait: bool = True) -> PipelineResult:
    """Parse flags, check inputs, run the pipeline (to completion unless ``wait`` is False: a Dataflow
    launcher only submits the job); raises UsageError before running."""
    options = PipelineOptions(list(argv) if argv is not None else None)
    opts, base = resolve_options(options)
    if opts.plan:
        raise UsageError("--plan runs no pipeline: use nst-pipeline --plan, or pipeline.plan.make_plan")
    return execute(options, opts, base, test_pipeline, wait)


def execute(options: PipelineOptions, opts: NSTPipelineOptions, base: StyleOptions,
            test_pipeline: beam.Pipeline | None = None, wait: bool = True) -> PipelineResult:
    """Run the checked options' pipeline (to completion with ``wait``)."""
    run_id = new_run_id()
    sub_runs = sub_run_lines(options, opts) if test_pipeline is None and wait else []
    if not sub_runs:
        p = test_pipeline or beam.Pipeline(runner=local_runner(options), options=options)
        build(p, opts, base, run_id)
    every = opts.progress_every if opts.progress_every is not None else 10.0
    watch = wait and every > 0 and not options.view_as(TestOptions).dry_run  # a dry run runs nothing to watch
    local = local_runner(options) is not None or test_pipeline is not None
    # the local runner runs the whole job inside p.run(): watch from before it; Dataflow returns once the job is
    # submitted (or a template staged: no job, nothing to watch)
    watcher = progress.ProgressWatcher(opts.output, run_id, every).start() if watch and local else None
    try:
        if sub_runs:
            return run_sub_runs(options, opts, base, run_id, sub_runs)
        result = p.run()
        if watch and watcher is None and getattr(result, "has_job", True) is not False:
            watcher = progress.ProgressWatcher(opts.output, run_id, every).start()
        if wait:
            result.wait_until_finish()
    finally:
        if watcher is not None:
            watcher.stop()
    return result


def sub_run_lines(options: PipelineOptions, opts: NSTPipelineOptions) -> list[tuple[int, int]]:
    """The manifest lines of each sub-run of a local run: the local runner holds every row of a run in its
    memory, a sub-run only its own.  [] for one run: on other runners, in fast or auto mode (which group the
    rows by style across the whole manifest), for a dry run, or when the rows fit in one sub-run."""
    size = opts.local_run_rows if opts.local_run_rows is not None else 10000
    if size <= 0 or local_runner(options) is None or options.view_as(TestOptions).dry_run:
        return []
    if FastConfig.from_options(opts).mode != "optimize":
        return []
    last, sheet = last_line_bound(opts), sheet_rows(opts)
    if last <= size:
        return []
    share = math.ceil(math.ceil(last / math.ceil(last / size)) / sheet) * sheet  # even shares, whole sheets
    return [(first, min(first + share - 1, last)) for first in range(1, last + 1, share)]


def last_line_bound(opts: NSTPipelineOptions) -> int:
    """A line number no row of the run is past: the manifest's line count, or cross mode's combinations plus
    one error row per file."""
    if opts.manifest:
        return storage.read_bytes(opts.manifest).count(b"\n") + 1
    n_contents, n_styles = (len({p for g in globs for p in storage.match(g)}) for globs in (opts.contents, opts.styles))
    return n_contents * n_styles + n_contents + n_styles


def run_sub_runs(options: PipelineOptions, opts: NSTPipelineOptions, base: StyleOptions, run_id: str,
                 sub_runs: list[tuple[int, int]]) -> SubRunsResult:
    """One local pipeline per line range, one after another, then the run files merged from their parts."""
    results, shared = [], Shared()  # in-process workers keep their engine from one sub-run to the next
    for k, lines in enumerate(sub_runs):
        LOG.info("sub-run %d of %d: manifest lines %d-%d", k + 1, len(sub_runs), *lines)
        p = beam.Pipeline(runner=local_runner(options), options=options)
        build(p, opts, base, run_id, lines, k, shared)
        result = p.run()
        result.wait_until_finish()
        results.append(result)
    merge_sub_runs(opts.output, source_of(opts), run_id, len(sub_runs), thumb_size(opts), sheet_rows(opts),
                   report_worst(opts), base.image_format, moved_to(opts, run_id))
    return SubRunsResult(results)


class SubRunsResult(PipelineResult):
    """The finished sub-runs of one local run, as one result: their metrics together."""

    def __init__(self, results: list[PipelineResult]):
        super().__init__(PipelineState.DONE)
        self.results = results

    def wait_until_finish(self, duration: int | None = None) -> str:
        return self.state

    def metrics(self) -> MetricResults:
        return _MergedMetrics(self.results)


class _MergedMetrics(MetricResults):
    def __init__(self, results: list[PipelineResult]):
        self.results = results

    def query(self, filter: MetricsFilter | None = None) -> dict[str, list[Any]]:
        merged: dict[str, list[Any]] = {}
        for result in self.results:
            for kind, values in result.metrics().query(filter).items():
                merged.setdefault(kind, []).extend(values)
        return merged


def counters(result: PipelineResult) -> dict[str, int]:
    """The nst counters of a finished run (committed values where the runner has them)."""
    out: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    try:
        query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NS))
    except Exception:  # noqa: BLE001 - some runners cannot report metrics; the summary file still can
        return out
    for c in query["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def read_summary(output: str) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_bytes(storage.join(output, "summary.json")))
    except (OSError, ValueError):
        return None


def print_help() -> None:
    parser = argparse.ArgumentParser(
        prog="nst-pipeline", description=__doc__.split("\n")[0],
        epilog="Beam options (--runner, --direct_num_workers, --direct_running_mode, --project, --region, "
               "--temp_location, ...) are accepted too.  Exit codes:"
               + __doc__.split("Exit codes:")[1].replace("\n", " "))
    add_flags(parser, show_defaults=True)
    parser.print_help()


# Worker start-up warnings a local run relays that a user cannot act on (we register no schema types).
WORKER_NOISE = ("No semi_persistent_directory found",)


def _not_worker_noise(record: logging.LogRecord) -> bool:
    return not any(n in record.getMessage() for n in WORKER_NOISE)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(_not_worker_noise)
    argv = engine_options.join_negative_values(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print_help()
        return 0
    try:
        options = PipelineOptions(argv)
        opts, base = resolve_options(options)
        if opts.plan:
            for line in plan.report_lines(plan.make_plan(opts, base), opts.output):
                print(f"nst-pipeline: {line}")
            return 0
        result = execute(options, opts, base)
    except UsageError as e:
        print(f"nst-pipeline: error: {storage.redact(str(e))}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - report a failed run in one line, details are in the log above
        LOG.error("run failed\n%s", storage.redact(traceback.format_exc()))
        print(f"nst-pipeline: the run failed: {type(e).__name__}: {storage.redact(str(e))}", file=sys.stderr)
        return 1
    output = PipelineOptions(argv).view_as(NSTPipelineOptions).output
    output = os.path.abspath(output) if storage.is_local(output) else output
    if getattr(result, "has_job", True) is False:  # DataflowRunner staged a template: nothing ran yet
        print("nst-pipeline: pipeline staged, no job ran")
        return 0
    summary = read_summary(output)
    c = counters(result)
    if summary is None:
        print("nst-pipeline: finished, but no summary.json was found under the output", file=sys.stderr)
        return 1
    trained = f", style networks trained {c['network_trainings']}" if c["network_trainings"] else ""
    print(f"nst-pipeline: {summary_line(summary)}; model loads {c['model_loads']}{trained}")
    output = storage.redact(output)
    print(f"nst-pipeline: outputs under {output} (report.html, metrics.jsonl, errors.jsonl)")
    if summary.get("orphans"):
        where = (f"moved to {storage.join(output, summary['pruned_to'])}" if summary.get("pruned_to")
                 else "left in place (--prune moves them aside)")
        print(f"nst-pipeline: {summary['orphans']} output file(s) that no row claims, {where}: see "
              f"{storage.join(output, 'orphans.txt')}", file=sys.stderr)
    if summary["errors"]:
        print(f"nst-pipeline: {summary['errors']} row(s) failed, see {storage.join(output, 'errors.jsonl')}",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
