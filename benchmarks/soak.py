"""Soak: a few hundred tiny pairs through DirectRunner multi_processing; throughput, memory per worker over the
run (must stay flat: no leak per pair) and model loads (must equal the workers that served pairs).

    PYTHONPATH=. .venv/bin/python benchmarks/soak.py                  # 300 pairs, 2 workers, 32 px, 2 steps
    PYTHONPATH=. .venv/bin/python benchmarks/soak.py --pairs 120 --workers 2 --keep

Not a CI test.  The pairs are made with numpy in a temp folder (distinct 32 px contents, a few styles, a seed per
row so every row is its own pair).  The pipeline runs as a child process (``python -m pipeline.run``) so the
script can watch its worker processes: it samples VmRSS/VmHWM from /proc/<pid>/status of every descendant of the
run, and counts metrics/<id>.json files to know how far the run is.  It then checks the run: exit code 0, the
accounting line [OK], every row stylized exactly once, no temp files left; and prints throughput (pairs/hour,
wall clock and steady state), peak RSS per worker in each quarter of the run, and model loads vs workers.
Exit code 0 if all checks pass and memory is flat, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_pairs(root: Path, n: int, size: int, n_styles: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "content").mkdir(parents=True)
    (root / "style").mkdir(parents=True)
    y, x = np.mgrid[0:size, 0:size]
    for s in range(n_styles):
        stripes = (np.sin(x / (2 + s) + y / (3 + s)) * 127 + 128)[..., None] * rng.uniform(0.3, 1, 3)
        Image.fromarray(stripes.astype(np.uint8)).save(root / "style" / f"s{s}.png")
    rows = ["id,content,style,seed"]
    for i in range(n):
        base = np.stack([x * 255 / size, y * 255 / size, np.full_like(x, i % 256)], 2)
        img = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "content" / f"c{i:04d}.png")
        rows.append(f"p{i:04d},content/c{i:04d}.png,style/s{i % n_styles}.png,{i}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def children() -> dict[int, int]:
    """pid -> parent pid of every process we can see."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                out[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(root: int) -> list[int]:
    parents = children()
    found, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def status_kb(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--styles", type=int, default=5, help="distinct style images (catalogs reuse a few)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    ap.add_argument("--flat-mb", type=float, default=60.0,
                    help="a worker's peak may grow at most this much from the 25%% to the 100%% mark")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (images, manifest, outputs)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nst-soak-"))
    manifest = make_pairs(tmp / "in", args.pairs, args.size, args.styles)
    out = tmp / "out"
    cmd = [sys.executable, "-m", "pipeline.run", "--manifest", str(manifest), "--output", str(out),
           "--size", str(args.size), "--steps", str(args.steps), "--coarse_steps", "1",
           "--min_size", str(max(16, args.size // 2)), "--thumbnail_size", "16",
           "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    print("command:", " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.monotonic()
    log = open(tmp / "run.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    samples: list[tuple[float, int, dict[int, dict[str, int]]]] = []  # (t, pairs done, pid -> kB)
    first_done = None
    metrics_dir = out / "metrics"
    while proc.poll() is None:
        done = len(list(metrics_dir.glob("*.json"))) if metrics_dir.is_dir() else 0
        now = time.monotonic() - t0
        if done and first_done is None:
            first_done = now
        mem = {pid: status_kb(pid) for pid in [proc.pid, *descendants(proc.pid)]}
        samples.append((now, done, {p: m for p, m in mem.items() if m}))
        time.sleep(args.interval)
    stdout = proc.stdout.read() if proc.stdout else ""
    wall = time.monotonic() - t0
    last_done = max((t for t, d, _ in samples if d < args.pairs), default=wall)
    log.close()

    # --- check the run -------------------------------------------------------------------------------------
    ok = True

    def check(cond: bool, what: str) -> None:
        nonlocal ok
        ok &= cond
        print(f"  [{'ok' if cond else 'FAIL'}] {what}")

    print("\nrun checks:")
    check(proc.returncode == 0, f"exit code {proc.returncode} (log: {tmp / 'run.log'})")
    line = next((ln for ln in stdout.splitlines() if "rows in" in ln), "")
    check("[OK]" in line, f"accounting: {line.removeprefix('nst-pipeline: ')}")
    records = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    ids = [r["id"] for r in records]
    check(len(ids) == len(set(ids)) == args.pairs and all(r["status"] == "stylized" for r in records),
          f"{len(set(ids))}/{args.pairs} rows stylized exactly once")
    images = list((out / "images").glob("*.png"))
    temps = [p for p in out.rglob("*") if ".tmp-" in p.name]
    check(len(images) == args.pairs and not temps, f"{len(images)} images, {len(temps)} temp files left")
    worker_pids = sorted({json.loads(p.read_text())["worker"]["pid"] for p in metrics_dir.glob("*.json")})
    loads_m = re.search(r"model loads (\d+)", stdout)
    loads = int(loads_m.group(1)) if loads_m else -1
    check(loads == len(worker_pids), f"model loads {loads} == worker processes that served pairs "
                                     f"{len(worker_pids)} (asked for {args.workers})")

    # --- throughput ----------------------------------------------------------------------------------------
    steady = (last_done - first_done) if first_done is not None and last_done > first_done else wall
    print("\nthroughput:")
    print(f"  wall clock {wall:.1f} s for {args.pairs} pairs = {args.pairs / wall * 3600:,.0f} pairs/hour "
          f"(includes Python/TF/VGG19 start-up of {args.workers + 1} processes)")
    print(f"  steady state (first to last pair written, {steady:.1f} s): "
          f"{max(args.pairs - 1, 1) / steady * 3600:,.0f} pairs/hour")
    per_worker = {pid: sum(1 for p in metrics_dir.glob("*.json")
                           if json.loads(p.read_text())["worker"]["pid"] == pid) for pid in worker_pids}
    print(f"  pairs per worker pid: {per_worker}")

    # --- memory --------------------------------------------------------------------------------------------
    print("\npeak RSS per worker (MB) in each quarter of the run (max VmRSS sampled while that quarter of the pairs "
          "was being written; the first quarter includes start-up):")
    marks = (25, 50, 75, 100)
    rows: dict[int, list[float | None]] = {}
    for pid in sorted({p for _, _, m in samples for p in m}):
        if pid != proc.pid and pid not in worker_pids:
            continue  # helper processes (e.g. the multiprocessing resource tracker)
        vals: list[float | None] = []
        for lo, mark in zip((-1, *marks), marks):
            upto = [m[pid]["VmRSS"] for _, d, m in samples if pid in m and "VmRSS" in m[pid]
                    and args.pairs * lo / 100 < d <= args.pairs * mark / 100]
            vals.append(max(upto) / 1024 if upto else None)
        rows[pid] = vals
    print(f"  {'pid':>8} {'role':<10} " + " ".join(f"{m:>7}%" for m in marks) + "   growth 25->100%")
    flat = True
    for pid, vals in rows.items():
        role = "launcher" if pid == proc.pid else "worker"
        growth = (vals[-1] - vals[0]) if vals[0] is not None and vals[-1] is not None else None
        if role == "worker" and growth is not None and growth > args.flat_mb:
            flat = False
        cells = " ".join(f"{v:8.0f}" if v is not None else f"{'-':>8}" for v in vals)
        print(f"  {pid:>8} {role:<10} {cells}   {growth:+.0f} MB" if growth is not None else
              f"  {pid:>8} {role:<10} {cells}")
    check(flat, f"worker memory flat (peak growth from 25% to 100% <= {args.flat_mb:.0f} MB)")
    print(f"\nsamples: {len(samples)} every {args.interval} s; outputs in {tmp}" if args.keep else
          f"\nsamples: {len(samples)} every {args.interval} s")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print("SOAK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
