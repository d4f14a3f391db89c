"""Pipeline throughput: pairs per hour for a 16-pair manifest with 1 and 2 local workers, and the
pipeline's overhead against calling the engine in a plain loop on the same pairs (target <= 5%).

    PYTHONPATH=. .venv/bin/python benchmarks/pipeline_throughput.py --size 256
    PYTHONPATH=. .venv/bin/python benchmarks/pipeline_throughput.py --size 256 --steps 40 --coarse-steps 20
    PYTHONPATH=. .venv/bin/python benchmarks/pipeline_throughput.py --size 256 --ab 2   # paired A/B, 1 worker

``--ab N`` runs N rounds of the plain loop and the 1-worker pipeline, in alternating order (loop then pipeline,
then pipeline then loop, ...)
so both sides see the same load on a shared machine, and prints each pair's ratio and their median.

Each mode writes to a fresh folder under benchmarks/out/ (nothing is skipped).  All timings start after
Python and TensorFlow are imported and include building VGG19: the loop builds one Stylizer and
stylizes, encodes and saves each pair (PNG + metrics JSON, the same work the pipeline's DoFn does);
the pipeline modes time ``pipeline.run.run()`` end to end (graph, workers, model loads, resume checks,
thumbnails, report).  The 2-worker mode uses DirectRunner multi_processing, whose worker processes
also pay their own TensorFlow import.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out" / "pipeline"


def images() -> tuple[list[Path], list[Path]]:
    shared = ROOT.parent / "shared" / "images"
    contents = sorted((ROOT / "samples" / "content").glob("*.jpg"))
    contents += [p for p in sorted((shared / "content").glob("*")) if p.name not in ("chelsea.png", "coffee.png")]
    styles = sorted((ROOT / "samples" / "style").glob("*.jpg"))
    styles += [p for p in sorted((shared / "style").glob("*")) if p.name not in {s.name for s in styles}]
    return contents, styles


def write_manifest(n: int) -> Path:
    contents, styles = images()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = ["id,content,style"]
    for i in range(n):  # distinct content x style combinations first, then new seeds would be needed
        c, s = contents[i % len(contents)], styles[(i // len(contents)) % len(styles)]
        rows.append(f"b{i:02d},{c},{s}")
    if len(set(rows)) != len(rows):
        raise SystemExit("not enough distinct images for the requested number of pairs")
    path = OUT / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def engine_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--size", str(args.size)]
    if args.steps is not None:
        flags += ["--steps", str(args.steps)]
    if args.coarse_steps is not None:
        flags += ["--coarse_steps", str(args.coarse_steps)]
    return flags


def plain_loop(manifest: Path, args: argparse.Namespace) -> float:
    from nst_core import Stylizer
    from pipeline.options import NSTPipelineOptions

    opts = NSTPipelineOptions(engine_flags(args)).style_options()
    out = OUT / "loop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = [line.split(",") for line in manifest.read_text().splitlines()[1:]]
    t0 = time.perf_counter()
    stylizer = Stylizer(opts)
    for pid, content, style in rows:
        result = stylizer.stylize(Path(content).read_bytes(), Path(style).read_bytes(), options=opts,
                                  content_name=content, style_names=[style])
        (out / f"{pid}.png").write_bytes(result.png_bytes())
        (out / f"{pid}.json").write_text(result.metrics_json())
    return time.perf_counter() - t0


def pipeline_run(manifest: Path, args: argparse.Namespace, workers: int) -> tuple[float, dict]:
    from pipeline.run import counters, run

    out = OUT / f"workers{workers}"
    shutil.rmtree(out, ignore_errors=True)
    beam_flags = (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"] if workers > 1
                  else ["--direct_num_workers=1"])
    t0 = time.perf_counter()
    result = run(["--manifest", str(manifest), "--output", str(out), *engine_flags(args), *beam_flags])
    seconds = time.perf_counter() - t0
    return seconds, counters(result)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None, help="engine default if not given")
    ap.add_argument("--coarse-steps", dest="coarse_steps", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ab", type=int, default=0, metavar="N", help="N alternating rounds of loop and 1-worker pipeline")
    ap.add_argument("--no-loop", dest="loop", action="store_false", help="time only the pipeline runs")
    args = ap.parse_args()
    import tensorflow  # noqa: F401 - import cost kept out of every timing

    manifest = write_manifest(args.pairs)
    if args.ab:
        return paired(manifest, args)
    results: dict[str, dict] = {}
    loop = plain_loop(manifest, args) if args.loop else None
    if loop is not None:
        results["loop"] = {"seconds": round(loop, 1), "pairs_per_hour": round(args.pairs * 3600 / loop, 1)}
        print(f"plain loop      : {loop:8.1f} s  {args.pairs * 3600 / loop:8.1f} pairs/h", flush=True)
    for w in args.workers:
        secs, c = pipeline_run(manifest, args, w)
        over = {"overhead_vs_loop": round(secs / loop - 1, 4)} if loop is not None else {}
        results[f"pipeline_{w}w"] = {"seconds": round(secs, 1), "pairs_per_hour": round(args.pairs * 3600 / secs, 1),
                                     **over, "model_loads": c["model_loads"], "stylized": c["pairs_stylized"]}
        vs = f"overhead vs loop {100 * (secs / loop - 1):+.1f}%  " if loop is not None else ""
        print(f"pipeline {w} wkr : {secs:8.1f} s  {args.pairs * 3600 / secs:8.1f} pairs/h  "
              f"{vs}model loads {c['model_loads']}", flush=True)
    print(json.dumps({"pairs": args.pairs, "size": args.size, "steps": args.steps, "coarse_steps": args.coarse_steps,
                      "results": results}, indent=1))
    return 0


def paired(manifest: Path, args: argparse.Namespace) -> int:
    import statistics

    rounds = []
    for r in range(args.ab):
        if r % 2 == 0:  # the order alternates, so neither side always runs first
            loop = plain_loop(manifest, args)
            secs, c = pipeline_run(manifest, args, 1)
        else:
            secs, c = pipeline_run(manifest, args, 1)
            loop = plain_loop(manifest, args)
        rounds.append({"loop": round(loop, 1), "pipeline": round(secs, 1), "overhead": round(secs / loop - 1, 4),
                       "stylized": c["pairs_stylized"], "model_loads": c["model_loads"]})
        print(f"round {r + 1}: loop {loop:7.1f} s  pipeline 1 worker {secs:7.1f} s  "
              f"overhead {100 * (secs / loop - 1):+.1f}%", flush=True)
    median = statistics.median(x["overhead"] for x in rounds)
    print(f"median overhead over {args.ab} rounds: {100 * median:+.1f}%")
    print(json.dumps({"pairs": args.pairs, "size": args.size, "rounds": rounds, "median_overhead": median}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
