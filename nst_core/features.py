"""Truncated VGG19 in plain TensorFlow ops, with Caffe preprocessing and a precision policy.

Plain ``tf.nn`` ops instead of a Keras model: the stack stops at the deepest layer asked for,
the kernels are stored once in the compute dtype, and the same object serves every image size
without rebuilding anything.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from nst_core.errors import InputError
from nst_core.options import VGG_LAYERS
from nst_core.weights import Weights

# Caffe preprocessing: BGR order, ImageNet channel means subtracted, 0..255 range.
BGR_MEANS = np.array([103.939, 116.779, 123.68], np.float32)

DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


@functools.lru_cache(maxsize=1)
def configure_devices() -> tuple[str, ...]:
    """Turn on GPU memory growth (so several workers can share a GPU) and list the GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: growth must be set before first use
            pass
    return tuple(g.name for g in gpus)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(precision: str) -> str:
    """``auto`` -> float16 on a GPU, bfloat16 on CPUs with AVX-512-BF16 or AMX-BF16, else float32."""
    if precision != "auto":
        return precision
    if configure_devices():
        return "float16"
    if os.environ.get("NST_FORCE_FLOAT32"):
        return "float32"
    flags = cpu_flags()
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


class VGGFeatures:
    """VGG19 conv stack; ``__call__`` maps a 0..255 RGB batch to the requested layers' activations."""

    def __init__(self, weights: Weights, precision: str = "float32", pooling: str = "max"):
        if pooling not in ("max", "avg"):
            raise InputError(f"pooling: {pooling!r} is not max or avg")
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.pooling = pooling
        self.kernels = {name: tf.constant(k, self.dtype) for name, (k, _) in weights.items()}
        self.biases = {name: tf.constant(b, self.dtype) for name, (_, b) in weights.items()}

    def __call__(self, rgb: tf.Tensor, layers: tuple[str, ...]) -> dict[str, tf.Tensor]:
        last = max(VGG_LAYERS.index(name) for name in layers)
        x = tf.reverse(tf.cast(rgb, tf.float32), axis=[-1]) - BGR_MEANS
        x = tf.cast(x, self.dtype)
        out: dict[str, tf.Tensor] = {}
        block = "block1"
        for name in VGG_LAYERS[: last + 1]:
            if not name.startswith(block):
                block = name.split("_")[0]
                pool = tf.nn.max_pool2d if self.pooling == "max" else tf.nn.avg_pool2d
                x = pool(x, 2, 2, "SAME")  # SAME: odd sides keep their last row, 1px sides work
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self.kernels[name], 1, "SAME"), self.biases[name]))
            if name in layers:
                out[name] = x
        return out


def conv_flops(hw: tuple[int, int], deepest: str) -> float:
    """Forward FLOPs (2 per multiply-add) of the stack up to ``deepest`` for an HxW input."""
    h, w = hw
    flops = 0.0
    cin = 3
    block = "block1"
    for name in VGG_LAYERS[: VGG_LAYERS.index(deepest) + 1]:
        if not name.startswith(block):
            block = name.split("_")[0]
            h, w = (h + 1) // 2, (w + 1) // 2
        cout = {"block1": 64, "block2": 128, "block3": 256}.get(block, 512)
        flops += 2.0 * h * w * cin * cout * 9
        cin = cout
    return flops
