"""Would several same-size pairs in one batch pay?  Times a warm VGG19 loss + input gradient (kernels as
graph constants, as in a pipeline worker) at batch 1 and 2, at the sizes of a 512 px run's scales.

    PYTHONPATH=. .venv/bin/python benchmarks/batch_probe.py

The loss is a stand-in (Gram matrices of the style layers, per image), so the figures are the step's VGG19
cost, not the engine's whole step; what matters is the batch-2 time per pair against batch 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import cpu_id  # noqa: E402

FULL = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1", "block4_conv2")
SHALLOW = ("block1_conv1", "block2_conv1", "block3_conv1")
SCALES = (((43, 64), FULL), ((86, 128), FULL), ((171, 256), FULL), ((341, 512), SHALLOW))


def main() -> int:
    from nst_core import StyleOptions, Stylizer
    from nst_core.tfimport import tf

    feats = Stylizer(StyleOptions()).features("max")
    print(cpu_id(), feats.dtype.name)

    def step_fn(layers: tuple[str, ...]):
        @tf.function(autograph=False, reduce_retracing=True)
        def f(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = 0.0
                for a in feats(x, layers, True).values():
                    m = tf.reshape(a, [tf.shape(a)[0], -1, tf.shape(a)[-1]])
                    total += tf.reduce_sum(tf.square(tf.cast(tf.matmul(m, m, transpose_a=True), tf.float32))) * 1e-12
            return total, tape.gradient(total, x)
        return f

    rng = np.random.default_rng(0)
    for hw, layers in SCALES:
        f = step_fn(layers)
        per_pair = {1: [], 2: []}
        for batch in (1, 2, 1, 2):
            x = tf.constant(rng.uniform(0, 255, (batch, *hw, 3)).astype(np.float32))
            for _ in range(3):
                f(x)[1].numpy()
            times = []
            for _ in range(15):
                t = time.perf_counter()
                f(x)[1].numpy()
                times.append(time.perf_counter() - t)
            per_pair[batch].append(float(np.median(times)) / batch)
        b1, b2 = min(per_pair[1]), min(per_pair[2])
        print(f"{hw[0]}x{hw[1]} ({len(layers)} layers): batch 1 {b1 * 1e3:.1f} ms a pair, batch 2 {b2 * 1e3:.1f} ms "
              f"a pair ({b2 / b1:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
