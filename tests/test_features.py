"""The VGG stack's hand-written gradients against TensorFlow's own (autodiff of the plain ops)."""

import numpy as np
import pytest
import tensorflow as tf

from nst_core import features
from nst_core.options import VGG_LAYERS


def grad_of(fn, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()


@pytest.mark.parametrize("hw", [(8, 8), (7, 5), (1, 1), (2, 3)])
@pytest.mark.parametrize("cin,cout", [(3, 4), (5, 2)])
def test_conv_relu_gradient_matches_autodiff(hw, cin, cout):
    rng = np.random.default_rng(hw[0] * 10 + cin)
    k = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    k_t = np.ascontiguousarray(np.transpose(k, (0, 1, 3, 2))[::-1, ::-1])
    x = rng.standard_normal((1, *hw, cin)).astype(np.float32)
    dy = rng.standard_normal((1, *hw, cout)).astype(np.float32)
    y_ref, g_ref = grad_of(lambda t: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(t, k, 1, "SAME"), b)), x, dy)
    y, g = grad_of(lambda t: features.conv_relu(t, tf.constant(k), tf.constant(k_t), tf.constant(b)), x, dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hw", [(8, 6), (7, 5), (1, 1), (3, 2)])
def test_max_pool_gradient_matches_autodiff(hw):
    rng = np.random.default_rng(sum(hw))
    x = rng.standard_normal((1, *hw, 3)).astype(np.float32)  # no ties: every window has one maximum
    out_hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    dy = rng.standard_normal((1, *out_hw, 3)).astype(np.float32)
    y_ref, g_ref = grad_of(lambda t: tf.nn.max_pool2d(t, 2, 2, "SAME"), x, dy)
    y, g = grad_of(features.max_pool, x, dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_max_pool_gradient_goes_to_one_of_tied_maxima_in_low_precision(dtype):
    """bf16/f16 round neighbours to equal values: each window's gradient must reach one position (the first
    maximum in row-major order, as MaxPoolGrad), not every tied one."""
    x = np.array([[1.0, 1.0, 0.5, 2.0], [1.0, 0.0, 2.0, 2.0], [3.0, 3.0, 1.0, 1.0], [0.0, 3.0, 1.0, 1.0],
                  [4.0, 1.0, 0.0, 0.0]], np.float32)[None, :, :, None]  # 5x4: the last row pools alone
    dy = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)[None, :, :, None]
    y, g = grad_of(features.max_pool, tf.cast(x, dtype), tf.cast(dy, dtype))
    expected = np.zeros_like(x)
    for (r, c), v in {(0, 0): 1.0, (0, 3): 2.0, (2, 0): 3.0, (2, 2): 4.0, (4, 0): 5.0, (4, 2): 6.0}.items():
        expected[0, r, c, 0] = v
    np.testing.assert_array_equal(np.asarray(g, np.float32), expected)
    np.testing.assert_array_equal(np.asarray(y, np.float32)[0, :, :, 0], [[1, 2], [3, 1], [4, 0]])
    # an odd side's pad never takes the gradient, even where the window's maximum is 0
    edge = np.array([[-1.0, 0.0, -2.0], [0.0, 0.0, 0.0]], np.float32)[None, :, :, None]
    _, g = grad_of(features.max_pool, tf.cast(edge, dtype), tf.cast(np.ones((1, 1, 2, 1), np.float32), dtype))
    np.testing.assert_array_equal(np.asarray(g, np.float32)[0, :, :, 0], [[0, 1, 0], [0, 0, 1]])


def small_weights(rng: np.random.Generator, widths: dict[str, int]) -> dict:
    """Random VGG weights up to block3_conv1, ``widths`` channels per block (a stack small enough to check)."""
    weights, cin = {}, 3
    for name in VGG_LAYERS[: VGG_LAYERS.index("block3_conv1") + 1]:
        cout = widths[name.split("_")[0]]
        weights[name] = (rng.standard_normal((3, 3, cin, cout)).astype(np.float32) * 0.3,
                         rng.standard_normal(cout).astype(np.float32) * 0.1)
        cin = cout
    return weights


def test_vgg_input_gradient_matches_autodiff_of_plain_ops():
    """The whole stack (Caffe preprocessing, convs, max pools, odd sides) against plain tf.nn ops."""
    rng = np.random.default_rng(7)
    layers = ("block1_conv1", "block2_conv1", "block3_conv1")
    weights = small_weights(rng, {"block1": 6, "block2": 8, "block3": 5})
    vgg = features.VGGFeatures(weights)
    x = rng.uniform(0, 255, (1, 13, 10, 3)).astype(np.float32)

    def plain(t):
        h = tf.reverse(t, axis=[-1]) - features.BGR_MEANS
        out = []
        block = "block1"
        for name in VGG_LAYERS[: VGG_LAYERS.index("block3_conv1") + 1]:
            if not name.startswith(block):
                block = name.split("_")[0]
                h = tf.nn.max_pool2d(h, 2, 2, "SAME")
            k, b = weights[name]
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, k, 1, "SAME"), b))
            if name in layers:
                out.append(tf.reduce_sum(tf.square(h)) * (1 + len(out)))
        return tf.add_n(out)

    def ours(t):
        acts = vgg(t, layers)
        return tf.add_n([tf.reduce_sum(tf.square(acts[n])) * (1 + i) for i, n in enumerate(layers)])

    v_ref, g_ref = grad_of(plain, x, np.float32(1.0))
    v, g = grad_of(ours, x, np.float32(1.0))
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4 * np.abs(g_ref).max())


def test_layers_are_converted_on_first_use_as_eager_tensors_even_while_tracing():
    """A stack stopping at block2_conv1 converts only the layers it runs, first asked for inside a trace, and
    the tensors it keeps are eager (constant_kernels reads them with .numpy()), serving eager calls after."""
    rng = np.random.default_rng(3)
    weights = small_weights(rng, {"block1": 4, "block2": 6, "block3": 5})
    vgg = features.VGGFeatures(weights)
    x = tf.constant(rng.uniform(0, 255, (1, 9, 7, 3)).astype(np.float32))
    traced = tf.function(lambda t: vgg(t, ("block2_conv1",), constant_kernels=True)["block2_conv1"])(x)
    assert sorted(vgg._params) == ["block1_conv1", "block1_conv2", "block2_conv1"]
    assert all(t.numpy() is not None for p in vgg._params.values() for t in p)  # eager, not graph tensors
    np.testing.assert_allclose(vgg(x, ("block2_conv1",))["block2_conv1"].numpy(), traced.numpy(), rtol=1e-5)
