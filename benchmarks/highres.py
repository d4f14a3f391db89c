"""High resolution: wall time, peak RSS and distances at 512-4096 px, and tiled-vs-untiled agreement.

Runs ``nst-stylize`` (cold, defaults) once per pair and size as a child process, reads that child's
peak RSS (``os.wait4``), scores every output resized to 512 px with :mod:`nst_core.metrics`, and
states times as ratios against the same pair's 512 px run of the same invocation.

    python benchmarks/highres.py                                   # 3 pairs x 512, 1024, 2048, 4096
    python benchmarks/highres.py --pair chelsea-starry --size 512 --size 2048
    python benchmarks/highres.py --agreement-only                  # tiled vs untiled loss and gradient
    python benchmarks/highres.py --model starry.keras --tag fast   # fast mode: a trained style network

Crops for looking at: ``benchmarks/out/highres/crops/<pair>_<size>_<where>.png``, left the 512 px
output upscaled, right the large output, same region at full resolution.
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
from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402

OUT = HERE / "out" / "highres"
DEFAULT_PAIRS = ("chelsea-starry", "astronaut-scream", "coffee-matisse")
SCORE_SIDE = 512
TARGETS = {2048: {"rss_gb": 4.0, "wall_x": 16.0, "within": 0.10}, 4096: {"rss_gb": 8.0, "within": 0.10}}


def run_child(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def stylize_cmd(content: Path, style: Path, size: int, out: Path, sets: list[str], model: str = "") -> list[str]:
    how = ["--model", model] if model else ["--style", str(style)]
    cmd = [str(Path(sys.executable).parent / "nst-stylize"), "--content", str(content), *how,
           "--output", str(out), "--size", str(size), "--metrics", str(out.with_suffix(".json")), "--quiet"]
    for s in sets:
        k, v = s.split("=", 1)
        cmd += ["--" + k.replace("_", "-"), v]
    return cmd


def score(out: Path, content: Path, style: Path, feats) -> dict[str, float]:
    from nst_core import images
    from nst_core.metrics import distances

    img = images.load_image(out)
    small = images.resize(img, images.fit_size(img.shape[:2], SCORE_SIDE))
    return distances(small, content, style, feats)


def crops(name: str, tag: str, sizes: list[int], side: int = 800) -> list[Path]:
    """Full-resolution crops of the large outputs next to the same region of the 512 px output, upscaled."""
    from PIL import Image

    base = OUT / f"{name}_512_{tag}.png"
    paths = []
    for size in sizes:
        out = OUT / f"{name}_{size}_{tag}.png"
        if size <= 512 or not out.exists() or not base.exists():
            continue
        big = Image.open(out).convert("RGB")
        small = Image.open(base).convert("RGB").resize(big.size, Image.BICUBIC)
        w, h = big.size
        for where, (x0, y0) in {"centre": ((w - side) // 2, (h - side) // 2), "corner": (0, 0)}.items():
            box = (x0, y0, x0 + min(side, w), y0 + min(side, h))
            sheet = Image.new("RGB", (2 * (box[2] - box[0]), box[3] - box[1]))
            sheet.paste(small.crop(box), (0, 0))
            sheet.paste(big.crop(box), (box[2] - box[0], 0))
            path = OUT / "crops" / f"{name}_{size}_{where}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            sheet.save(path)
            paths.append(path)
    return paths


def agreement(pair: str, hw_side: int) -> dict:
    """Tiled vs untiled loss and gradient on one image small enough for both (shallow and full objectives)."""
    import numpy as np
    import tensorflow as tf

    from nst_core import Stylizer, images, tiling
    from nst_core.options import VGG_LAYERS, StyleOptions

    content, style = PAIRS[pair]
    eng = Stylizer()
    rows = {}
    for which in ("shallow", "full"):
        opts = StyleOptions(size=hw_side)
        opts = opts.refine_options() if which == "shallow" else opts
        c = images.load_image(content)
        hw = images.fit_size(c.shape[:2], hw_side)
        c = images.resize(c, hw)
        x = np.clip(c + np.random.default_rng(0).normal(0, 20, c.shape), 0, 255).astype(np.float32)
        fn, ct, st, lw, wts = eng._problem(opts, "float32", c, [images.load_image(style)], np.array([1.0]), hw)
        u = [v.numpy() for v in fn(tf.constant(x[None]), ct, st, lw, wts)]
        deepest = max((*opts.style_layers, opts.content_layer), key=VGG_LAYERS.index)
        tiles = tiling.plan(hw, deepest, 0, core_side=128)  # forced: both fit untiled at this size
        vgg = tiling.TiledVGG(eng.features("max", "float32"), opts.style_layers, opts.content_layer)
        t = vgg.loss(x, tiles, vgg.content_features(c, tiles), st, lw.numpy(), wts.numpy())
        g_u, g_t = u[4][0], t[4]
        rows[which] = {"hw": list(hw), "tiles": len(tiles), "deepest": deepest,
                       "loss_rel": abs(float(u[0]) - t[0]) / abs(float(u[0])),
                       "grad_rel_max": float(np.abs(g_t - g_u).max() / np.abs(g_u).max()),
                       "grad_rel_l2": float(np.linalg.norm(g_t - g_u) / np.linalg.norm(g_u))}
        print(f"agreement {pair} {which:<8} {hw[0]}x{hw[1]} {len(tiles):>3} tiles (deepest {deepest}): loss rel "
              f"{rows[which]['loss_rel']:.1e}, gradient rel max {rows[which]['grad_rel_max']:.1e}, "
              f"rel L2 {rows[which]['grad_rel_l2']:.1e}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, action="append")
    ap.add_argument("--pair", action="append")
    ap.add_argument("--set", action="append", default=[], help="engine option override key=value")
    ap.add_argument("--tag", default="defaults")
    ap.add_argument("--model", default="", help="a trained style network (.keras): fast mode instead of optimising")
    ap.add_argument("--agreement-only", action="store_true")
    ap.add_argument("--agreement-side", type=int, default=512)
    ap.add_argument("--no-agreement", action="store_true")
    args = ap.parse_args()
    print(f"CPU: {cpu_id()}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict = {"cpu": cpu_id()}
    if not args.no_agreement:
        result["agreement"] = agreement(DEFAULT_PAIRS[0], args.agreement_side)
    if args.agreement_only:
        print(json.dumps(result, indent=1))
        return 0
    from nst_core.features import VGGFeatures
    from nst_core.weights import load_weights

    feats = VGGFeatures(load_weights(), "float32", "max")
    sizes = sorted(set(args.size or [512, 1024, 2048, 4096]) | {512})
    rows = []
    print(f"{'pair':<18}{'size':>5} {'h x w':>10} {'wall s':>7} {'x512':>6} {'RSS GiB':>7} {'plan GiB':>8}"
          f" {'tiles':>5} {'content':>8} {'style':>7} {'c/c512':>7} {'s/s512':>7}  verdict", flush=True)
    for name in args.pair or DEFAULT_PAIRS:
        content, style = PAIRS[name]
        base = None
        for size in sizes:
            out = OUT / f"{name}_{size}_{args.tag}.png"
            cmd = stylize_cmd(content, style, size, out, args.set, args.model)
            wall, rss = run_child(cmd)
            m = json.loads(out.with_suffix(".json").read_text())
            d = score(out, content, style, feats)
            row = {"pair": name, "size": size, "hw": m["size"], "wall_s": round(wall, 1), "rss_gb": round(rss, 2),
                   "tiles": max((e.get("tiles", 1) for e in m["trace"]), default=1), "distances_at_512": d,
                   "planned_gb": round(max((e.get("planned_mb", 0) for e in m["trace"]), default=0) / 1024, 2),
                   "command": " ".join(cmd[1:]), "cpu": result["cpu"]}
            if size == 512:
                base = row
            verdict = ""
            if base is not None:
                row["wall_x512"] = wall / base["wall_s"]
                row["content_ratio"] = d["content"] / base["distances_at_512"]["content"]
                row["style_ratio"] = d["style"] / base["distances_at_512"]["style"]
                t = TARGETS.get(size)
                if t:
                    ok_d = max(abs(row["content_ratio"] - 1), abs(row["style_ratio"] - 1)) <= t["within"]
                    ok_m = rss * 1024**3 <= t["rss_gb"] * 1e9  # rss in GiB, the target in GB
                    ok_w = row["wall_x512"] <= t.get("wall_x", float("inf"))
                    verdict = ", ".join([f"dist {'met' if ok_d else 'MISSED'}", f"RSS {'met' if ok_m else 'MISSED'}"]
                                        + ([f"wall {'met' if ok_w else 'MISSED'}"] if "wall_x" in t else []))
            print(f"{name:<18}{size:>5} {m['size'][0]:>4}x{m['size'][1]:<5} {wall:>7.1f} "
                  f"{row.get('wall_x512', float('nan')):>6.2f} {rss:>7.2f} {row['planned_gb']:>8.2f} "
                  f"{row['tiles']:>5} {d['content']:>8.3f} "
                  f"{d['style']:>7.3f} {row.get('content_ratio', float('nan')):>7.3f} "
                  f"{row.get('style_ratio', float('nan')):>7.3f}  {verdict}", flush=True)
            rows.append(row)
            result["runs"] = rows
            (OUT / f"highres_{args.tag}.json").write_text(json.dumps(result, indent=1))
        crops(name, args.tag, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
