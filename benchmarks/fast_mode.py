"""Fast mode: train a style network on CPU, then time and score it on held-out contents.

Trains (or with --reuse loads) a network for one style on the shared content images minus the
held-out ones, then for each held-out content: the per-image stylise time at --eval-size (warm,
median of --repeats), and the yardstick distances (:mod:`nst_core.metrics`, float32 VGG19) of
the fast output against those of the unstylised content (and, with --gatys, of the engine's
default optimised stylisation).

    python benchmarks/fast_mode.py                                   # 450 steps, batch 4, 128px crops
    python benchmarks/fast_mode.py --reuse --gatys                   # score an existing model vs Gatys
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
OUT = HERE / "out"
SHARED = ROOT.parent / "shared" / "images" / "content"

from nst_core.options import TRAIN_CROP, TRAIN_STEPS, TRAIN_STYLE_BOOST  # noqa: E402 (no TensorFlow import)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--style", default=str(ROOT / "samples" / "style" / "starry_night.jpg"))
    ap.add_argument("--contents", default=str(SHARED))
    ap.add_argument("--hold-out", default="astronaut.png,rocket.jpg", help="comma list of held-out file names")
    ap.add_argument("--steps", type=int, default=TRAIN_STEPS)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--crop", type=int, default=TRAIN_CROP)
    ap.add_argument("--size", type=int, default=512, help="training scale (longest side)")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--style-boost", type=float, default=TRAIN_STYLE_BOOST, help="training style-weight multiplier")
    ap.add_argument("--skip", action="store_true", help="identity-skip output layer (Architecture(skip=True))")
    ap.add_argument("--eval-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(OUT / "fast_starry.keras"))
    ap.add_argument("--reuse", action="store_true", help="load --model instead of training")
    ap.add_argument("--gatys", action="store_true", help="also score the engine's default Gatys run")
    ap.add_argument("--snapshots", default="", help="comma list of training steps at which to also score "
                    "the network (quality against training time)")
    args = ap.parse_args()
    snap_steps = [int(s) for s in args.snapshots.split(",") if s.strip()]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import numpy as np

    from nst_core import fast, images
    from nst_core.features import VGGFeatures
    from nst_core.metrics import distances
    from nst_core.options import StyleOptions
    from nst_core.weights import load_weights

    held = [h.strip() for h in args.hold_out.split(",") if h.strip()]
    every = sorted(p for p in Path(args.contents).iterdir() if p.is_file())
    train = [p for p in every if p.name not in held]
    test = [p for p in every if p.name in held]
    if not train or not test:
        print(f"need training and held-out images in {args.contents}", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    model_path = Path(args.model)
    report: dict = {"style": args.style, "train": [p.name for p in train], "held_out": [p.name for p in test]}
    if args.reuse:
        net = fast.load_style_network(model_path)
        figures = net.meta["training"]
    else:
        def progress(e: dict) -> None:
            if e["step"] == 1 or e["step"] % 25 == 0:
                print(f"  step {e['step']:4d} {e['seconds']:7.1f}s total {e['total']:.4f} content {e['content']:.3f} "
                      f"style {e['style']:.4f} tv {e['tv']:.4f}", flush=True)

        cfg = fast.TrainConfig(steps=args.steps, batch_size=args.batch_size, crop=args.crop,
                               learning_rate=args.learning_rate, style_boost=args.style_boost)
        print(f"training on {[p.name for p in train]}: {cfg}", flush=True)

        def snapshot(step: int, model) -> None:
            model.save_weights(str(model_path.with_suffix(f".step{step}.weights.h5")))

        model, figures = fast.train_style_network(args.style, [str(p) for p in train], StyleOptions(size=args.size),
                                                  cfg, arch=fast.Architecture(skip=args.skip),
                                                  style_name=args.style, progress=progress,
                                                  snapshot=snapshot, snapshot_steps=snap_steps)
        fast.save_style_network(model, model_path)
        net = fast.load_style_network(model_path)
    report["training"] = {k: v for k, v in figures.items() if k != "trace"}
    print(f"training: {figures['steps']} steps x batch {figures['batch_size']} x {figures['crop']}px crops, "
          f"{figures['seconds']:.1f}s ({figures['seconds_per_step']:.3f} s/step, {figures['precision']}); "
          f"loss {figures['initial_losses']['total']:.4f} -> {figures['final_losses_mean_last_10pct']['total']:.4f}")

    feats = VGGFeatures(load_weights(), "float32", "max")
    rows = []
    print(f"{'content':<16}{'size':>10} | {'net s':>6} {'total s':>7} | {'unstyled c/s':>14} | "
          f"{'fast c/s':>14}" + (f" | {'gatys s':>7} {'gatys c/s':>14}" if args.gatys else ""))
    for path in test:
        arr = images.load_image(path)
        hw = images.fit_size(arr.shape[:2], args.eval_size)
        fast.stylize_with_network(net, arr, args.eval_size, compute_losses=False)  # warm-up (tracing)
        net_s, total_s = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = fast.stylize_with_network(net, path, args.eval_size, compute_losses=False)
            total_s.append(time.perf_counter() - t0)
            net_s.append(res.network["network_seconds"])
        out_png = OUT / f"{model_path.stem}_{path.stem}_{args.eval_size}.png"
        res.save(out_png)
        d_fast = distances(res.image, path, args.style, feats)
        d_none = distances(images.resize(arr, hw), path, args.style, feats)
        row = {"content": path.name, "hw": list(hw), "network_s": float(np.median(net_s)),
               "stylize_s": float(np.median(total_s)), "unstylized": d_none, "fast": d_fast, "image": str(out_png)}
        line = (f"{path.name:<16}{hw[1]:>5}x{hw[0]:<4} | {row['network_s']:>6.3f} {row['stylize_s']:>7.3f} | "
                f"{d_none['content']:>6.3f} {d_none['style']:>7.3f} | "
                f"{d_fast['content']:>6.3f} {d_fast['style']:>7.3f}")
        if args.gatys:
            from nst_core.stylizer import Stylizer

            t0 = time.perf_counter()
            g = Stylizer(StyleOptions(size=args.eval_size)).stylize(path, args.style)
            g_s = time.perf_counter() - t0
            d_g = distances(g.image, path, args.style, feats)
            row["gatys"] = {**d_g, "seconds": g_s}
            line += f" | {g_s:>7.1f} {d_g['content']:>6.3f} {d_g['style']:>7.3f}"
        print(line, flush=True)
        rows.append(row)
    report["rows"] = rows
    snaps = []
    for step in snap_steps:
        weights_file = model_path.with_suffix(f".step{step}.weights.h5")
        if not weights_file.exists():
            continue
        final_weights = net.model.get_weights()
        net.model.load_weights(str(weights_file))
        sec = figures["first_step_seconds"] + (step - 1) * figures["seconds_per_step"]
        row = {"step": step, "training_s_est": round(sec, 1)}
        for path in test:
            res = fast.stylize_with_network(net, path, args.eval_size, compute_losses=False)
            row[path.name] = distances(res.image, path, args.style, feats)
        net.model.set_weights(final_weights)
        print(f"snapshot step {step:5d} (~{sec:6.0f} s of training): " + "  ".join(
            f"{p.name} {row[p.name]['content']:.3f}/{row[p.name]['style']:.3f}" for p in test), flush=True)
        snaps.append(row)
    report["snapshots"] = snaps
    (OUT / f"{model_path.stem}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
