"""Where a VGG19 step's time goes on this CPU: TensorFlow's own gradients vs the engine's.

Prints, per VGG19 conv shape at a 512px input, the forward conv, TensorFlow's input gradient
(Conv2DBackpropInput) and the engine's (a forward conv with the rotated, channel-swapped
kernel: ``nst_core.features.conv_relu``); 2x2 max pooling's gradient (MaxPoolGrad vs
``features.max_pool``); and the engine's loss + gradient at 512x512 (full depth and the
shallow final scale).  ``--plain`` times that last part with TensorFlow's own gradients instead.

    PYTHONPATH=. .venv/bin/python benchmarks/vgg_ops.py [--size 512] [--plain]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from pairs import PAIRS  # noqa: E402

from nst_core import features, images  # noqa: E402
from nst_core.options import StyleOptions  # noqa: E402
from nst_core.stylizer import Stylizer  # noqa: E402


def best_of(fn, n: int = 5) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def conv_table(h: int) -> None:
    print(f"conv 3x3 at a {h}px input: ms (GFLOP/s)")
    for cin, cout, side in [(3, 64, h), (64, 64, h), (64, 128, h // 2), (128, 128, h // 2), (128, 256, h // 4),
                            (256, 256, h // 4), (256, 512, h // 8), (512, 512, h // 8)]:
        x = tf.random.normal([1, side, side, cin])
        w = tf.random.normal([3, 3, cin, cout]) * 0.05
        dy = tf.random.normal([1, side, side, cout])
        w_t = tf.reverse(tf.transpose(w, [0, 1, 3, 2]), [0, 1])
        fwd = tf.function(lambda x=x, w=w: tf.nn.conv2d(x, w, 1, "SAME"))
        tf_grad = tf.function(lambda dy=dy, w=w, cin=cin, side=side: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[1, side, side, cin], filter=w, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))
        our_grad = tf.function(lambda dy=dy, w_t=w_t: tf.nn.conv2d(dy, w_t, 1, "SAME"))
        gflop = 2.0 * side * side * cin * cout * 9 / 1e9
        t = [best_of(f) for f in (fwd, tf_grad, our_grad)]
        print(f"  {cin:3d}->{cout:3d} @{side:3d}: forward {1e3 * t[0]:6.1f} ({gflop / t[0]:5.1f})  "
              f"TF input grad {1e3 * t[1]:6.1f} ({gflop / t[1]:5.1f})  ours {1e3 * t[2]:6.1f} ({gflop / t[2]:5.1f})")


def pool_table(h: int) -> None:
    print("2x2 max pooling, forward + gradient: ms")
    for side, c in [(h, 64), (h // 2, 128), (h - 1, 64)]:
        x = tf.nn.relu(tf.random.normal([1, side, side, c]))

        def grad(pool, x=x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = pool(x)
            return tape.gradient(y, x)

        plain = tf.function(lambda: grad(lambda t: tf.nn.max_pool2d(t, 2, 2, "SAME")))
        ours = tf.function(lambda: grad(features.max_pool))
        print(f"  {side}x{side}x{c}: MaxPoolGrad {1e3 * best_of(plain):6.1f}  ours {1e3 * best_of(ours):6.1f}")


def step_table(h: int) -> None:
    print(f"loss + gradient at {h}x{h} (astronaut + The Scream): s")
    st = Stylizer(StyleOptions(precision="float32"))
    content_path, style_path = PAIRS["astronaut-scream"]
    content, style = images.load_image(str(content_path)), images.load_image(str(style_path))
    for name, o in [("full depth", st.options), ("shallow final scale", st.options.replace(size=h).refine_options())]:
        c = images.resize(content, (h, h))
        fn, c_target, s_targets, lw, w = st._problem(o, "float32", c, [style], np.array([1.0]), (h, h))
        args = (tf.constant(c[None]), c_target, s_targets, lw, w)
        print(f"  {name}: {best_of(lambda fn=fn, args=args: fn(*args)[-1].numpy(), 4):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--plain", action="store_true", help="the step table with TensorFlow's own gradients")
    args = ap.parse_args()
    if args.plain:  # swap the hand-written gradients for the plain ops
        features.conv_relu = lambda x, k, _k_t, b: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "SAME"), b))
        features.max_pool = lambda x: tf.nn.max_pool2d(x, 2, 2, "SAME")
    else:
        conv_table(args.size)
        pool_table(args.size)
    step_table(args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
