"""Mixed float16, the GPU default (``auto``): its loss scaling keeps the gradient, and a pair runs in it.

float16 runs on the CPU too (slowly), so this runs everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from images_factory import CONTENT, STYLE

from nst_core import images, losses
from nst_core.options import StyleOptions
from nst_core.stylizer import Stylizer

HW = (128, 128)  # large enough that unscaled float16 gradients lose most of their bits (per-pixel means)
OPTS = StyleOptions(precision="float16", style_weight=1e-3)


def _gradient(st: Stylizer, precision: str) -> np.ndarray:
    content = images.resize(images.load_image(CONTENT), HW)
    x = np.clip(content + np.random.default_rng(0).normal(0, 20, content.shape), 0, 255).astype(np.float32)
    fn, c_target, s_targets, lw, wts = st._problem(OPTS, precision, content, [images.load_image(STYLE)],
                                                   np.array([1.0]), HW)
    return fn(tf.constant(x[None]), c_target, s_targets, lw, wts)[4].numpy().ravel()


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def f16(stylizer) -> Stylizer:
    return Stylizer(OPTS, stylizer._weights)


def test_loss_scaled_float16_gradient_matches_float32(f16, monkeypatch):
    g32 = _gradient(f16, "float32")
    assert _relative_error(_gradient(f16, "float16"), g32) < 0.05
    # The control: without the scale the same gradient is mostly lost to float16's range.
    monkeypatch.setattr(losses, "loss_scale", lambda precision: 1.0)
    f16._loss_fns.clear()
    assert _relative_error(_gradient(f16, "float16"), g32) > 0.5
    f16._loss_fns.clear()


def test_a_pair_runs_in_float16_without_the_float32_retry(f16):
    r = f16.stylize(CONTENT, STYLE, StyleOptions(size=48, steps=4, coarse_steps=4, min_size=24,
                                                 precision="float16"))
    assert r.precision == "float16" and not r.retried
    assert all(np.isfinite(v) for v in r.losses.values())
    assert r.trace[-1]["total"] < r.trace[0]["total"]
