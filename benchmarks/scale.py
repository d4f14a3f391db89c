"""Scale: a catalog-sized manifest (10k, 100k rows) through the pipeline; wall time and peak RSS of every process.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --rows 10000 100000

How the mix is made (printed with the results):
1. seed: a real run of ``--seed-pairs`` distinct tiny pairs (``--size`` px, 2 steps) into OUT.
2. resumed rows: for each, the seed pair it copies gets a new id; its ``metrics/<id>.json`` is the seed's
   metrics file with the id replaced, and its image and thumbnail are hard links to the seed's.  The
   fingerprint depends on content, style and options, not on the id, so the pipeline's resume check
   (fingerprint, input stamps, image present) passes for real: these rows are real skips.
3. bad rows: ``--bad`` percent, half a content file that does not exist (fails in the stylize step after
   its read), half an invalid option (size 0, fails when the manifest is parsed).
4. real rows: ``--real`` new pairs (the seed images with seeds no earlier run used): stylized by the engine.
The pipeline runs as a child process (DirectRunner multi_processing, 2 workers); every descendant's
VmHWM (peak RSS) is read from /proc while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from soak import cmdline, descendants, status_kb  # noqa: E402  (the /proc readers of the soak benchmark)

FLAGS = ["--steps", "2", "--coarse_steps", "1", "--thumbnail_size", "32"]


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = np.clip(np.linspace(0, 255, size * size * 3).reshape(size, size, 3) + rng.normal(0, 40, (size, size, 3)),
                      0, 255).astype(np.uint8)
        p = folder / f"img{i:02d}.png"
        Image.fromarray(arr, "RGB").save(p)
        paths.append(p)
    return paths


def run_pipeline(manifest: Path, out: Path, size: int, log: Path, interval: float, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pipeline.run", "--manifest", str(manifest), "--output", str(out), "--size",
           str(size), "--min_size", str(max(16, size // 2)), *FLAGS, "--progress_every", "30",
           "--direct_running_mode=multi_processing", "--direct_num_workers=2", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        peaks: dict[int, tuple[int, str]] = {}
        while proc.poll() is None:
            for pid in [proc.pid, *descendants(proc.pid)]:
                kb = status_kb(pid).get("VmHWM")
                if kb:
                    peaks[pid] = (max(kb, peaks.get(pid, (0, ""))[0]), peaks.get(pid, (0, ""))[1] or cmdline(pid))
            time.sleep(interval)
    wall = time.monotonic() - t0
    text = log.read_text()
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    procs = []
    for pid, (kb, cmd_text) in sorted(peaks.items()):
        role = ("launcher" if pid == proc.pid else "shell" if cmd_text.startswith("/bin/sh") else
                "worker (engine inside)" if "sdk_worker" in cmd_text else "helper")
        procs.append({"pid": pid, "role": role, "peak_rss_mb": round(kb / 1024, 1), "cmd": cmd_text[:80]})
    report = out / "report.html"
    return {"exit": proc.returncode, "wall_s": round(wall, 1), "summary": summary, "processes": procs,
            "progress_lines": [ln for ln in text.splitlines() if "nst-pipeline: stylized" in ln][-3:],
            "report_kb": round(report.stat().st_size / 1024, 1) if report.exists() else None}


def build_mix(root: Path, seed_out: Path, rows: int, real: int, bad_pct: float, size: int) -> tuple[Path, Path, dict]:
    """OUT pre-filled with resumed outputs, and the manifest (see the module's docstring)."""
    seeds = [json.loads(p.read_text()) for p in sorted((seed_out / "metrics").glob("*.json"))]
    out = root / f"out{rows}"
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("metrics", "images", "thumbs"):
        (out / sub).mkdir(parents=True)
    shutil.copytree(seed_out / "sources", out / "sources")
    rng = random.Random(rows)
    n_bad = round(rows * bad_pct / 100)
    n_resumed = rows - real - n_bad
    lines = ["id,content,style,seed,size"]
    kinds = ["resumed"] * n_resumed + ["missing"] * (n_bad // 2) + ["badopt"] * (n_bad - n_bad // 2) + ["real"] * real
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        rid = f"r{i:06d}"
        seed = seeds[i % len(seeds)]
        content, style = seed["content"], seed["styles"][0]
        if kind == "resumed":
            stored = {**seed, "id": rid}
            (out / "metrics" / f"{rid}.json").write_text(json.dumps(stored))
            os.link(seed_out / "images" / f"{seed['id']}.png", out / "images" / f"{rid}.png")
            os.link(seed_out / "thumbs" / f"{seed['id']}.webp", out / "thumbs" / f"{rid}.webp")
            lines.append(f"{rid},{content},{style},{seed['seed']},")
        elif kind == "missing":
            lines.append(f"{rid},{content}.missing.png,{style},0,")
        elif kind == "badopt":
            lines.append(f"{rid},{content},{style},0,0")
        else:
            lines.append(f"{rid},{content},{style},{1000 + i},")
    manifest = root / f"manifest{rows}.csv"
    manifest.write_text("\n".join(lines) + "\n")
    mix = {"rows": rows, "resumed": n_resumed, "bad_missing_file": n_bad // 2, "bad_option": n_bad - n_bad // 2,
           "real": real}
    return manifest, out, mix


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed-pairs", type=int, default=20)
    ap.add_argument("--real", type=int, default=200, help="rows stylized for real in each run")
    ap.add_argument("--bad", type=float, default=2.5, help="percent of bad rows")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--local-run-rows", type=int, help="the pipeline's --local_run_rows (default: its own)")
    args = ap.parse_args()
    extra = [] if args.local_run_rows is None else ["--local_run_rows", str(args.local_run_rows)]
    root = Path(tempfile.mkdtemp(prefix="nst-scale-"))
    try:
        imgs = make_images(root / "img", 8, args.size)
        contents, styles = imgs[:5], imgs[5:]
        seed_manifest = root / "seed.csv"
        seed_manifest.write_text("id,content,style,seed\n" + "".join(
            f"s{i:02d},{contents[i % 5]},{styles[i % 3]},{i}\n" for i in range(args.seed_pairs)))
        seed_out = root / "seed_out"
        seed = run_pipeline(seed_manifest, seed_out, args.size, root / "seed.log", args.interval, extra)
        print(f"seed run: {args.seed_pairs} pairs, exit {seed['exit']}, {seed['wall_s']} s", flush=True)
        results = []
        for rows in args.rows:
            manifest, out, mix = build_mix(root, seed_out, rows, args.real, args.bad, args.size)
            res = run_pipeline(manifest, out, args.size, root / f"run{rows}.log", args.interval, extra)
            res["mix"] = mix
            results.append(res)
            s = res["summary"]
            print(f"\n{rows} rows ({mix}): exit {res['exit']}, wall {res['wall_s']} s, "
                  f"report.html {res['report_kb']} KB")
            print(f"  summary: rows {s.get('rows')} stylized {s.get('stylized')} skipped {s.get('skipped')} "
                  f"errors {s.get('errors')} balanced {s.get('balanced')} sheets {s.get('sheets')}")
            for p in res["processes"]:
                print(f"  pid {p['pid']:>7} {p['role']:<22} peak RSS {p['peak_rss_mb']:8.1f} MB  {p['cmd']}")
            for line in res["progress_lines"]:
                print("  " + line)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        print(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept", root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
