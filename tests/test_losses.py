"""Gram matrix and losses against plain numpy."""

import numpy as np
import pytest
import tensorflow as tf

from nst_core import losses


def np_gram(f):
    m = f.reshape(-1, f.shape[-1]).astype(np.float64)
    return m.T @ m / m.shape[0]


def test_gram_matches_numpy():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((1, 7, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(losses.gram(tf.constant(f)).numpy(), np_gram(f[0]), rtol=1e-5, atol=1e-6)


def test_gram_is_size_normalised():
    # The same texture tiled twice as large has the same Gram matrix.
    rng = np.random.default_rng(1)
    f = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    big = np.tile(f, (1, 2, 2, 1))
    np.testing.assert_allclose(losses.gram(tf.constant(big)).numpy(), losses.gram(tf.constant(f)).numpy(),
                               rtol=1e-5)


def test_content_loss_matches_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 1, 6, 6, 8)).astype(np.float32)
    want = ((a - b) ** 2).sum() / (b**2).sum()
    np.testing.assert_allclose(float(losses.content_loss(tf.constant(a), tf.constant(b))), want, rtol=1e-5)
    assert float(losses.content_loss(tf.constant(b), tf.constant(b))) == 0.0


def test_style_layer_loss_matches_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 5, 5)).astype(np.float32)
    want = ((a - b) ** 2).sum() / (b**2).sum()
    np.testing.assert_allclose(float(losses.style_layer_loss(tf.constant(a), tf.constant(b))), want, rtol=1e-5)


def test_tv_loss_matches_numpy():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (1, 9, 11, 3)).astype(np.float32)
    y = x / 255.0
    want = ((y[:, 1:] - y[:, :-1]) ** 2).mean() + ((y[:, :, 1:] - y[:, :, :-1]) ** 2).mean()
    np.testing.assert_allclose(float(losses.tv_loss(tf.constant(x))), want, rtol=1e-5)
    assert float(losses.tv_loss(tf.constant(np.full((1, 4, 4, 3), 7.0, np.float32)))) == 0.0


def test_tv_loss_of_a_one_pixel_high_image_is_finite_and_horizontal_only():
    row = tf.constant(np.array([[[[0.0] * 3, [255.0] * 3, [0.0] * 3]]], np.float32))  # 1x3: no vertical pairs
    with tf.GradientTape() as tape:
        tape.watch(row)
        tv = losses.tv_loss(row)
    assert float(tv) == pytest.approx(1.0)  # both horizontal pairs differ by the full range
    assert np.isfinite(tape.gradient(tv, row).numpy()).all()
    assert float(losses.tv_loss(tf.zeros([1, 1, 1, 3]))) == 0.0
