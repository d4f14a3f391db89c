"""What an optimizer loop kept inside the graph would save: per-step time of the host loop against a tf.while_loop.

The engine's steps return to Python after every loss + gradient (L-BFGS in numpy, a progress callback,
the trace).  Issue 20 asks whether a loop that stays on the device, with one host sync per scale, is worth
building.  On a CPU the device is the host, so this measures its best case here: the same loss and gradient,
N plain gradient steps, once with a round trip per step and once in one traced ``tf.while_loop``:

    python benchmarks/ingraph_loop.py --side 32 --side 64 --side 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402


def per_step_ms(stylizer, opts, start: np.ndarray, style: np.ndarray, n: int,
                rounds: int) -> tuple[list[float], list[float]]:
    """Milliseconds a step of n gradient steps from ``start``, per round: in a host loop, and in one in-graph loop."""
    from nst_core.tfimport import tf

    fn, c_target, s_targets, lw, wts = stylizer._problem(opts, stylizer.precision, start, [style],
                                                         np.array([1.0]), start.shape[:2])

    def host_loop() -> None:
        x = start.copy()
        for _ in range(n):
            total, _c, _s, _tv, g = fn(tf.constant(x[None]), c_target, s_targets, lw, wts)
            float(total)
            g = g.numpy()[0]
            x = np.clip(x - 0.5 * g / (np.abs(g).max() + 1e-12), 0, 255).astype(np.float32)

    @tf.function(autograph=False)
    def graph_loop(x: tf.Tensor) -> tf.Tensor:
        def body(i, x):
            g = fn(x, c_target, s_targets, lw, wts)[-1]
            return i + 1, tf.clip_by_value(x - 0.5 * g / (tf.reduce_max(tf.abs(g)) + 1e-12), 0.0, 255.0)

        return tf.while_loop(lambda i, x: i < n, body, (tf.constant(0), x))[1]

    def device_loop() -> None:
        graph_loop(tf.constant(start[None])).numpy()

    for loop in (host_loop, device_loop):
        loop()  # traces and first calls
    host, graph = [], []
    for _ in range(rounds):  # alternating, so a drift in the host's speed hits both alike
        for loop, out in ((host_loop, host), (device_loop, graph)):
            t = time.perf_counter()
            loop()
            out.append((time.perf_counter() - t) / n * 1000)
    return host, graph


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, action="append", help="longest side of a full-depth scale (repeatable)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=7, help="alternating host / in-graph runs")
    ap.add_argument("--pair", default="chelsea-starry")
    args = ap.parse_args()

    from nst_core import images
    from nst_core.options import StyleOptions
    from nst_core.stylizer import Stylizer

    opts = StyleOptions()
    stylizer = Stylizer(opts)
    content, style = (images.load_image(p) for p in PAIRS[args.pair])
    n = args.steps
    print(f"CPU: {cpu_id()}  precision {stylizer.precision}  {n} steps, {args.rounds} alternating rounds")
    for side in args.side or [32, 64, 128]:
        hw = images.fit_size(content.shape[:2], side)
        host, graph = per_step_ms(stylizer, opts, images.resize(content, hw), style, n, args.rounds)
        ratios = sorted(g / h for h, g in zip(host, graph))
        print(f"  {hw[0]}x{hw[1]} px: median ms a step: host loop {np.median(host):.1f}, in-graph loop "
              f"{np.median(graph):.1f}; in-graph / host per round: median {np.median(ratios):.2f} "
              f"({ratios[0]:.2f}-{ratios[-1]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
