"""XLA probe: the engine's loss-and-gradient functions compiled with XLA (``jit_compile``) against as shipped.

    PYTHONPATH=. .venv/bin/python benchmarks/xla_probe.py            # as shipped
    JIT=1 PYTHONPATH=. .venv/bin/python benchmarks/xla_probe.py      # every traced loss function through XLA

Two pairs, each stylized twice by one warm Stylizer (``SIZE`` px, default 256); the second run is the warm
figure.  ``JIT=1`` wraps ``tf.function`` before the engine is imported, so only this process is changed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import tensorflow as tf  # noqa: E402

_plain = tf.function


def _jit_function(*args, **kwargs):
    if kwargs.get("autograph") is False and "input_signature" in kwargs:  # the engine's loss functions
        kwargs["jit_compile"] = True
    return _plain(*args, **kwargs)


if os.environ.get("JIT") == "1":
    tf.function = _jit_function

from machine import cpu_id  # noqa: E402
from pairs import PAIRS  # noqa: E402

from nst_core.options import StyleOptions  # noqa: E402
from nst_core.stylizer import Stylizer  # noqa: E402


def main() -> int:
    size = int(os.environ.get("SIZE", "256"))
    stylizer = Stylizer(StyleOptions(size=size))
    print(f"CPU: {cpu_id()}  size {size}  precision {stylizer.precision}  XLA {os.environ.get('JIT') == '1'}")
    for name in ("chelsea-wave", "coffee-matisse"):
        content, style = PAIRS[name]
        for run in ("first", "warm"):
            t0 = time.perf_counter()
            result = stylizer.stylize(content, style, StyleOptions(size=size))
            print(f"  {name:<16} {run:<5} {time.perf_counter() - t0:6.2f} s  content {result.losses['content']:.3f}  "
                  f"style {result.losses['style']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
