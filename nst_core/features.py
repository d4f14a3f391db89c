"""Truncated VGG19 in plain TensorFlow ops, with Caffe preprocessing and a precision policy.

Plain ``tf.nn`` ops instead of a Keras model: the stack stops at the deepest layer asked for,
the kernels are stored once in the compute dtype, and the same object serves every image size
without rebuilding anything.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from nst_core.errors import InputError
from nst_core.options import VGG_LAYERS
from nst_core.tfimport import tf
from nst_core.weights import Weights

# Caffe preprocessing: BGR order, ImageNet channel means subtracted, 0..255 range.
BGR_MEANS = np.array([103.939, 116.779, 123.68], np.float32)

DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}


# TensorFlow's devices are per process and memory growth can only be set before their first use, so the
# record that it was done is per process too: one module flag, set once under its lock.
_DEVICES: tuple[str, ...] | None = None
_DEVICES_LOCK = threading.Lock()


def configure_devices() -> tuple[str, ...]:
    """Turn on GPU memory growth (so several workers can share a GPU) and list the GPUs; once per process,
    later calls return the same list."""
    global _DEVICES
    with _DEVICES_LOCK:
        if _DEVICES is None:
            gpus = tf.config.list_physical_devices("GPU")
            for gpu in gpus:
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:  # already initialised: growth must be set before first use
                    pass
            _DEVICES = tuple(g.name for g in gpus)
        return _DEVICES


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
        self._weights = weights
        self._params: dict[str, tuple[tf.Tensor, tf.Tensor, tf.Tensor]] = {}
        self._params_lock = threading.Lock()

    def params(self, name: str) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Layer ``name``'s kernel, its input-gradient kernel and bias in the compute dtype, made on first use
        (a stack that stops at conv5_1 never converts the three layers below it)."""
        with self._params_lock:
            if name not in self._params:
                k, b = self._weights[name]
                with tf.init_scope():  # eager tensors even when first asked for while tracing
                    kernel = tf.constant(k, self.dtype)
                    # The input gradient of a stride-1 SAME 3x3 conv is a forward conv of the output gradient
                    # with the kernel rotated 180 degrees and its channels swapped; TensorFlow's ops make it
                    # without numpy's two extra copies (benchmarks/RESULTS.md, Quality per second).
                    kernel_t = tf.reverse(tf.transpose(kernel, (0, 1, 3, 2)), axis=[0, 1])
                    self._params[name] = (kernel, kernel_t, tf.constant(b, self.dtype))
            return self._params[name]

    def __call__(self, rgb: tf.Tensor, layers: tuple[str, ...], constant_kernels: bool = False) -> dict[str, tf.Tensor]:
        """``constant_kernels``: while tracing, put the kernels in the graph as constants (oneDNN reorders a kernel
        passed in on every call and keeps a constant's reordered copy: benchmarks/RESULTS.md, Quality per second)."""
        last = max(VGG_LAYERS.index(name) for name in layers)
        x = tf.reverse(tf.cast(rgb, tf.float32), axis=[-1]) - BGR_MEANS
        x = tf.cast(x, self.dtype)
        out: dict[str, tf.Tensor] = {}
        block = "block1"
        for name in VGG_LAYERS[: last + 1]:
            if not name.startswith(block):
                block = name.split("_")[0]
                # SAME: odd sides keep their last row, 1px sides work
                x = max_pool(x) if self.pooling == "max" else tf.nn.avg_pool2d(x, 2, 2, "SAME")
            k, k_t, b = self.params(name)
            if constant_kernels and not tf.executing_eagerly():
                k, k_t = tf.constant(k.numpy()), tf.constant(k_t.numpy())
            x = conv_relu(x, k, k_t, b)
            if name in layers:
                out[name] = x
        return out


def conv_relu(x: tf.Tensor, kernel: tf.Tensor, kernel_t: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """relu(conv3x3(x) + b), whose input gradient is a forward conv with ``kernel_t``.

    TensorFlow's own input gradient (Conv2DBackpropInput) is slower than a forward conv on CPU, and
    the kernels are constants, so their gradient is never needed; the 3-channel first layer keeps
    TensorFlow's, faster there (benchmarks/RESULTS.md, Engine vs peer: hand-written input gradients).
    """

    @tf.custom_gradient
    def f(x):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))

        def grad(dy):
            dz = tf.raw_ops.ReluGrad(gradients=dy, features=y)  # one pass, where a compare + select took two
            if kernel.shape[2] <= 4 and kernel.dtype == tf.float32:  # the first layer (faster in float32)
                return tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dz,
                                                      strides=[1, 1, 1, 1], padding="SAME")
            return tf.nn.conv2d(dz, kernel_t, 1, "SAME")

        return y, grad

    return f(x)


def max_pool(x: tf.Tensor) -> tf.Tensor:
    """2x2 SAME max pooling; in bfloat16 TensorFlow's own (oneDNN's MaxPoolGrad was 2x faster than the window
    compare on AMX, benchmarks/RESULTS.md, Quality per second: the 512 px step), else :func:`window_max_pool`."""
    if x.dtype == tf.bfloat16:
        return tf.nn.max_pool2d(x, 2, 2, "SAME")
    return window_max_pool(x)


@tf.custom_gradient
def window_max_pool(x: tf.Tensor) -> tf.Tensor:
    """2x2 SAME max pooling with a window-compare gradient (faster than MaxPoolGrad in float32 on CPU:
    ``benchmarks/vgg_ops.py``).  Each window's gradient goes to one position, its first maximum in
    row-major order, as MaxPoolGrad does: in float16 (bfloat16 takes MaxPoolGrad) neighbours often round to
    equal values.  In float32 ties only occur between zeros of a relu output, whose own gradient is zero,
    so there every tied position gets it (one compare, no tie-break)."""
    y = tf.nn.max_pool2d(x, 2, 2, "SAME")

    def grad(dy):
        s, h2, w2 = tf.shape(x), tf.shape(y)[1], tf.shape(y)[2]
        # pad below every value, so a pad never counts as a window's maximum (SAME pools ignore pads)
        xp = tf.pad(x, [[0, 0], [0, 2 * h2 - s[1]], [0, 2 * w2 - s[2]], [0, 0]], constant_values=x.dtype.min)
        windows = tf.reshape(xp, [s[0], h2, 2, w2, 2, s[3]])
        hit = tf.equal(windows, y[:, :, None, :, None, :])
        if x.dtype != tf.float32:
            hit = _first_hit(hit)
        routed = tf.cast(hit, dy.dtype) * dy[:, :, None, :, None, :]
        return tf.reshape(routed, tf.shape(xp))[:, : s[1], : s[2], :]

    return y, grad


def _first_hit(hit: tf.Tensor) -> tf.Tensor:
    """Of a [N, H, 2, W, 2, C] window mask, only each window's first true position (row-major)."""
    a, b = hit[:, :, 0, :, 0, :], hit[:, :, 0, :, 1, :]
    c, d = hit[:, :, 1, :, 0, :], hit[:, :, 1, :, 1, :]
    b = b & ~a
    c = c & ~(a | b)
    d = d & ~(a | b | c)
    return tf.stack([tf.stack([a, b], axis=3), tf.stack([c, d], axis=3)], axis=2)


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
