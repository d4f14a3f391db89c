"""Gatys losses, normalised so that the same weights give the same balance at any image size.

Every term is a relative (or per-pixel mean) quantity: the content loss divides by the
target's energy, each style layer's Gram difference by the target Gram's energy, and Grams are
averaged over positions.  Classic implementations sum instead, so their style/content balance
shifts with resolution; these do not.
"""

from __future__ import annotations

import numpy as np

from nst_core.options import VGG_LAYERS, StyleOptions
from nst_core.tfimport import tf

EPS = 1e-8


def gram(features: tf.Tensor) -> tf.Tensor:
    """Gram matrix F^T F / (h*w) of a [1, h, w, c] activation, returned in float32.

    A bfloat16 activation is multiplied in bfloat16 (float32 accumulation, 0.2 % rounding of the result):
    3x faster than a float32 matmul on AMX and no activation-sized casts (benchmarks/RESULTS.md, Quality per
    second: the 512 px step). float16 is cast to float32 first: its range cannot hold an unnormalised Gram.
    """
    if features.dtype not in (tf.bfloat16, tf.float32):
        features = tf.cast(features, tf.float32)
    m = tf.reshape(features, [-1, tf.shape(features)[-1]])
    return gram_sum(m) / tf.cast(tf.shape(m)[0], tf.float32)


def masked_gram(features: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """F^T diag(m) F / sum(m) of a [1, h, w, c] activation and [1, h, w, 1] weights (Gatys et al. 2017):
    the Gram of the weighted region alone, whatever the size of the rest."""
    f = tf.cast(features, tf.float32)
    m = tf.reshape(f, [-1, tf.shape(f)[-1]])
    w = tf.reshape(tf.cast(weights, tf.float32), [-1, 1])
    return gram_sum(m, w) / (tf.reduce_sum(w) + EPS)


def gram_sum(m: tf.Tensor, w: tf.Tensor | None = None) -> tf.Tensor:
    """M^T diag(w) M of an [n, c] matrix and optional [n, 1] position weights (constants), in float32.

    Its gradient is one matmul, diag(w) M (dG + dG^T), where autodiff does two and adds them: 4 % of a
    float32 512 px step (benchmarks/RESULTS.md, Quality per second: Gram gradients in float32).
    """
    return _gram_sum(m) if w is None else _weighted_gram_sum(m, w)


@tf.custom_gradient
def _gram_sum(m: tf.Tensor) -> tf.Tensor:
    def grad(dg: tf.Tensor) -> tf.Tensor:
        return tf.matmul(m, tf.cast(dg + tf.transpose(dg), m.dtype))

    return tf.cast(tf.matmul(m, m, transpose_a=True), tf.float32), grad


@tf.custom_gradient
def _weighted_gram_sum(m: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    mw = m * w

    def grad(dg: tf.Tensor) -> tuple[tf.Tensor, None]:
        return tf.matmul(mw, dg + tf.transpose(dg)), None

    return tf.matmul(mw, m, transpose_a=True), grad


def masked_content_loss(features: tf.Tensor, target: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """sum(m (F - Fc)^2) / sum(m Fc^2), with [1, h, w, 1] weights m."""
    f = tf.cast(features, tf.float32)
    t = tf.cast(target, tf.float32)
    w = tf.cast(weights, tf.float32)
    return tf.reduce_sum(w * tf.square(f - t)) / (tf.reduce_sum(w * tf.square(t)) + EPS)


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """sum((F - Fc)^2) / sum(Fc^2)."""
    f = tf.cast(features, tf.float32)
    t = tf.cast(target, tf.float32)
    return tf.reduce_sum(tf.square(f - t)) / (tf.reduce_sum(tf.square(t)) + EPS)


def style_layer_loss(g: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """||G - Gs||_F^2 / ||Gs||_F^2."""
    return tf.reduce_sum(tf.square(g - target)) / (tf.reduce_sum(tf.square(target)) + EPS)


@tf.custom_gradient
def tv_loss(image: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of neighbouring pixels, in units of the full 0..255 range; a side of one
    pixel has no neighbours along it, so that term is 0 (the mean of nothing would be NaN).

    The gradient is written out: autodiff's four StridedSliceGrads cost more than the rest of the term.
    """
    x = tf.cast(image, tf.float32) / 255.0
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    ny, nx = _count(dy), _count(dx)
    loss = tf.reduce_sum(tf.square(dy)) / ny + tf.reduce_sum(tf.square(dx)) / nx

    def grad(up: tf.Tensor) -> tf.Tensor:
        gy, gx = dy * (2.0 / ny), dx * (2.0 / nx)
        g = (tf.pad(gy, [[0, 0], [1, 0], [0, 0], [0, 0]]) - tf.pad(gy, [[0, 0], [0, 1], [0, 0], [0, 0]])
             + tf.pad(gx, [[0, 0], [0, 0], [1, 0], [0, 0]]) - tf.pad(gx, [[0, 0], [0, 0], [0, 1], [0, 0]]))
        return tf.cast(g * (up / 255.0), image.dtype)

    return loss, grad


def _count(t: tf.Tensor) -> tf.Tensor:
    """The number of terms of a mean, at least 1: an empty difference sums to 0, so its mean is 0."""
    return tf.cast(tf.maximum(tf.size(t), 1), tf.float32)


def loss_scale(precision: str) -> float:
    """The factor a float16 loss is multiplied by before its gradient (and the gradient divided by after),
    so small per-pixel gradients do not underflow float16; 1 in the other precisions."""
    return 1024.0 if precision == "float16" else 1.0


def layer_weights(opts: StyleOptions) -> np.ndarray:
    """The style layers' weights, normalised to sum to 1 (equal when none are given)."""
    lw = np.array(opts.style_layer_weights or [1.0] * len(opts.style_layers), np.float32)
    return lw / lw.sum()


def feature_layers(opts: StyleOptions) -> tuple[str, ...]:
    """The VGG19 layers the losses read: the style layers and the content layer, in network order."""
    return tuple(sorted(set(opts.style_layers) | {opts.content_layer}, key=VGG_LAYERS.index))


def style_hw(style_hw: tuple[int, int], out_hw: tuple[int, int], style_scale: float = 1.0) -> tuple[int, int]:
    """The size a style image is resized to for an output of ``out_hw``: its aspect kept, its pixel count
    the output's times ``style_scale`` (so the Grams' texture scale follows the output's)."""
    sh, sw = style_hw
    k = (out_hw[0] * out_hw[1] * style_scale / (sh * sw)) ** 0.5
    return max(1, round(sh * k)), max(1, round(sw * k))
