"""How far the distances move when the content changes by less than one grey level: the noise floor of a margin.

Each pair runs once as is and then with N imperceptible perturbations of its content (uniform noise of
``--amplitude`` grey levels, seeded, below 8-bit quantization); every output is scored against the
unperturbed content and style, as ``sweep.py`` scores it.  A margin over the peer smaller than the spread
printed here is a coin flip, not a property of the schedule:

    python benchmarks/noise_floor.py --size 512 --pair chelsea-scream --pair rocket-scream
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402
from sweep import parse_variant, peer_distances  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pair", action="append", required=True, help="a pair of benchmarks/pairs.py (repeatable)")
    ap.add_argument("--perturbations", type=int, default=4, help="runs with a perturbed content, besides the plain one")
    ap.add_argument("--amplitude", type=float, default=0.5, help="grey levels of the uniform noise (0..255 scale)")
    ap.add_argument("--variant", default="", help='option overrides, "k=v;k=v" as sweep.py takes them')
    args = ap.parse_args()

    from nst_core import images
    from nst_core.features import VGGFeatures
    from nst_core.metrics import distances
    from nst_core.options import StyleOptions
    from nst_core.stylizer import Stylizer
    from nst_core.weights import load_weights

    weights = load_weights()
    yardstick = VGGFeatures(weights, "float32", "max")
    opts = StyleOptions(size=args.size).replace(**parse_variant(args.variant))
    stylizer = Stylizer(opts, weights)
    peer = peer_distances(args.pair, args.size, yardstick)
    print(f"CPU: {cpu_id()}  size {args.size}  precision {stylizer.precision}  amplitude {args.amplitude}")
    for name in args.pair:
        content_path, style_path = PAIRS[name]
        content, style = images.load_image(content_path), images.load_image(style_path)
        rows = []
        for seed in range(args.perturbations + 1):
            noise = np.random.default_rng(seed).uniform(-args.amplitude, args.amplitude, content.shape)
            c = content if seed == 0 else np.clip(content + noise, 0, 255).astype(np.float32)
            r = stylizer.stylize(c, style, opts)
            d = distances(images.to_uint8(r.image), content_path, style_path, yardstick)
            rows.append((d["content"], d["style"]))
            print(f"  {name:<18} {'plain' if seed == 0 else f'seed {seed}':<8} {d['content']:.3f} / {d['style']:.3f}",
                  flush=True)
        a = np.array(rows)
        pd = peer.get(name)
        line = (f"  {name}: content {a[:, 0].min():.3f}-{a[:, 0].max():.3f} (sd {a[:, 0].std(ddof=1):.4f}), "
                f"style {a[:, 1].min():.3f}-{a[:, 1].max():.3f} (sd {a[:, 1].std(ddof=1):.4f})")
        if pd:
            line += f"; peer {pd['content']:.3f} / {pd['style']:.3f}, runs better on both: " \
                    f"{int(((a[:, 0] <= pd['content']) & (a[:, 1] <= pd['style'])).sum())} of {len(a)}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
