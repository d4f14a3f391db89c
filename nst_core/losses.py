"""Gatys losses, normalised so that the same weights give the same balance at any image size.

Every term is a relative (or per-pixel mean) quantity: the content loss divides by the
target's energy, each style layer's Gram difference by the target Gram's energy, and Grams are
averaged over positions.  Classic implementations sum instead, so their style/content balance
shifts with resolution; these do not.
"""

from __future__ import annotations

from nst_core.tfimport import tf

EPS = 1e-8


def gram(features: tf.Tensor) -> tf.Tensor:
    """Gram matrix F^T F / (h*w) of a [1, h, w, c] activation, computed in float32."""
    f = tf.cast(features, tf.float32)
    c = tf.shape(f)[-1]
    m = tf.reshape(f, [-1, c])
    return tf.matmul(m, m, transpose_a=True) / tf.cast(tf.shape(m)[0], tf.float32)


def masked_gram(features: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """F^T diag(m) F / sum(m) of a [1, h, w, c] activation and [1, h, w, 1] weights (Gatys et al. 2017):
    the Gram of the weighted region alone, whatever the size of the rest."""
    f = tf.cast(features, tf.float32)
    c = tf.shape(f)[-1]
    m = tf.reshape(f, [-1, c])
    w = tf.reshape(tf.cast(weights, tf.float32), [-1, 1])
    return tf.matmul(m * w, m, transpose_a=True) / (tf.reduce_sum(w) + EPS)


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


def tv_loss(image: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of neighbouring pixels, in units of the full 0..255 range."""
    x = tf.cast(image, tf.float32) / 255.0
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))
