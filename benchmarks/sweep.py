"""In-process schedule sweep: option variants x benchmark pairs, scored against the peer's images.

One Stylizer serves every run (warm: no start-up, traces reused), so a variant's total engine
seconds compare variants on this CPU; cold CLI figures come from ``compare.py``.  Each variant is a
``;``-separated list of option overrides (empty string = the defaults):

    python benchmarks/sweep.py --size 256 "" "coarse_steps=15;style_weight=25"
    python benchmarks/sweep.py --size 512 --pair astronaut-scream "steps=12"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import cpu_id  # noqa: E402
from pairs import PAIRS, QUALITY_SET  # noqa: E402

PEER_RESULTS = HERE / "peer" / "peer_results.json"


def parse_variant(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split(";") if kv.strip())


def peer_distances(names: list[str], size: int, yardstick) -> dict[str, dict[str, float]]:
    """The yardstick's distances of the peer's image of each pair at ``size``, for the pairs it has one of."""
    from nst_core.metrics import distances

    peer = json.loads(PEER_RESULTS.read_text())
    out = {}
    for name in names:
        p = peer.get(f"{name}@{size}")
        content, style = PAIRS[name]
        if p and (HERE / "peer" / p["image"]).exists():
            out[name] = distances(HERE / "peer" / p["image"], content, style, yardstick)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="*", default=[""], help='option overrides, "k=v;k=v" ("" = defaults)')
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--pair", action="append", help="default: the pairs of the quality set (pairs.QUALITY_SET)")
    ap.add_argument("--save", type=Path, help="folder for the output images")
    ap.add_argument("--precision", default="auto", help="the Stylizer's precision (bfloat16 is emulated on a CPU "
                    "without bf16 hardware: indicative of such CPUs' distances, not of their speed)")
    args = ap.parse_args()

    from nst_core.features import VGGFeatures
    from nst_core.metrics import distances
    from nst_core.options import StyleOptions
    from nst_core.stylizer import Stylizer
    from nst_core.weights import load_weights

    weights = load_weights()
    yardstick = VGGFeatures(weights, "float32", "max")
    stylizer = Stylizer(StyleOptions(size=args.size, precision=args.precision), weights)
    names = args.pair or list(QUALITY_SET)
    peer_d = peer_distances(names, args.size, yardstick)
    print(f"CPU: {cpu_id()}  size {args.size}  precision {stylizer.precision}")
    # one untimed run first, so the first variant does not pay the traces
    stylizer.stylize(PAIRS[names[0]][0], PAIRS[names[0]][1], StyleOptions(size=args.size, steps=1, coarse_steps=1))
    for variant in args.variants:
        opts = StyleOptions(size=args.size, precision=args.precision).replace(**parse_variant(variant))
        total, wins, scored = 0.0, 0, 0
        print(f"== {variant or 'defaults'}  schedule {opts.stages()}")
        for name in names:
            content, style = PAIRS[name]
            r = stylizer.stylize(content, style, opts)
            total += r.seconds
            out = (args.save or HERE / "out" / "sweep") / f"{name}_{args.size}_{variant or 'defaults'}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            r.save(out)
            d = distances(out, content, style, yardstick)
            pd = peer_d.get(name)
            verdict = ""
            if pd:
                scored += 1
                ok = d["content"] <= pd["content"] and d["style"] <= pd["style"]
                wins += ok
                verdict = (f"peer {pd['content']:.3f} / {pd['style']:.3f}  "
                           + ("win" if ok else "LOSS " + ",".join(k for k in ("content", "style") if d[k] > pd[k])))
            print(f"  {name:<18} {r.seconds:6.2f} s  {d['content']:.3f} / {d['style']:.3f}  {verdict}", flush=True)
        print(f"  total {total:.1f} s, {wins}/{scored} pairs better on both distances", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
