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


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_gram_gradient_matches_autodiff_of_plain_matmul(dtype):
    # A non-symmetric upstream gradient, so both halves of d(M^T M) are checked.
    rng = np.random.default_rng(7)
    f = tf.constant(rng.standard_normal((1, 6, 5, 4)), dtype)
    upstream = tf.constant(rng.standard_normal((4, 4)).astype(np.float32))

    def plain(t):
        m = tf.reshape(tf.cast(t, tf.float32), [-1, 4])
        return tf.matmul(m, m, transpose_a=True) / 30.0

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(f)
        ours, want = (tf.reduce_sum(g * upstream) for g in (losses.gram(f), plain(f)))
    assert losses.gram(f).dtype == tf.float32
    np.testing.assert_allclose(float(ours), float(want), rtol=1e-5)
    np.testing.assert_allclose(tf.cast(tape.gradient(ours, f), tf.float32).numpy(),
                               tf.cast(tape.gradient(want, f), tf.float32).numpy(), rtol=2e-3, atol=1e-5)


def test_masked_gram_gradient_matches_autodiff_of_plain_matmul():
    rng = np.random.default_rng(8)
    f = tf.constant(rng.standard_normal((1, 6, 5, 4)).astype(np.float32))
    w = tf.constant(rng.uniform(0, 1, (1, 6, 5, 1)).astype(np.float32))
    upstream = tf.constant(rng.standard_normal((4, 4)).astype(np.float32))

    def plain(t):
        m, mw = tf.reshape(t, [-1, 4]), tf.reshape(t * w, [-1, 4])
        return tf.matmul(mw, m, transpose_a=True) / (tf.reduce_sum(w) + losses.EPS)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(f)
        ours, want = (tf.reduce_sum(g * upstream) for g in (losses.masked_gram(f, w), plain(f)))
    np.testing.assert_allclose(float(ours), float(want), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(ours, f).numpy(), tape.gradient(want, f).numpy(), rtol=1e-4, atol=1e-6)


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


def _plain_tv(image):
    x = image / 255.0
    dy, dx = x[:, 1:] - x[:, :-1], x[:, :, 1:] - x[:, :, :-1]
    mean = lambda t: tf.reduce_mean(t) if t.shape.num_elements() else 0.0  # noqa: E731
    return mean(tf.square(dy)) + mean(tf.square(dx))


@pytest.mark.parametrize("hw", [(9, 11), (2, 2), (1, 5), (6, 1)])
def test_tv_loss_gradient_matches_autodiff_of_plain_ops(hw):
    x = tf.constant(np.random.default_rng(sum(hw)).uniform(0, 255, (1, *hw, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, plain = 3.0 * losses.tv_loss(x), 3.0 * _plain_tv(x)  # an upstream factor reaches the gradient
    np.testing.assert_allclose(float(ours), float(plain), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(plain, x).numpy(), rtol=1e-5, atol=1e-9)


def test_bfloat16_gram_and_its_gradient_match_float32():
    rng = np.random.default_rng(5)
    f = tf.constant(np.abs(rng.standard_normal((1, 16, 12, 8))).astype(np.float32))
    f16 = tf.cast(f, tf.bfloat16)
    target = tf.constant(np_gram(rng.standard_normal((10, 8)).astype(np.float32)), tf.float32)
    f32 = tf.cast(f16, tf.float32)  # the same rounded values, so only the Gram's own rounding differs
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([f16, f32])
        g_low, g_ref = losses.gram(f16), losses.gram(f32)
        l_low, l_ref = (losses.style_layer_loss(g, target) for g in (g_low, g_ref))
    assert g_low.dtype == tf.float32
    np.testing.assert_allclose(g_low.numpy(), g_ref.numpy(), rtol=1e-2, atol=1e-3)
    d_low = tf.cast(tape.gradient(l_low, f16), tf.float32).numpy()
    d_ref = tape.gradient(l_ref, f32).numpy()
    assert np.abs(d_low - d_ref).max() <= 0.02 * np.abs(d_ref).max()
    assert np.corrcoef(d_low.ravel(), d_ref.ravel())[0, 1] > 0.999
