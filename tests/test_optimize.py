"""The pixel optimisers on cheap objectives whose minimum is known."""

import numpy as np

from nst_core import images, optimize
from nst_core.stylizer import _carry_curvature, _upsample


def _quadratic(target: np.ndarray, scale: np.ndarray):
    """f(x) = mean(scale * (x - target)^2): per-pixel mean, like the engine's losses."""
    def objective(x: np.ndarray):
        diff = x - target
        total = float(np.mean(scale * diff * diff))
        grad = (2.0 * scale * diff / diff.size).astype(np.float32)
        return total, {"total": total}, grad
    return objective


def _run(objective, x0, steps, **kw):
    seen: list[np.ndarray] = []
    x, parts = optimize.lbfgs(x0, objective, steps, lambda p, x: seen.append(x.copy()), **kw)
    return x, parts, seen


def test_lbfgs_reaches_the_minimum_of_an_ill_conditioned_quadratic():
    rng = np.random.default_rng(0)
    target = rng.uniform(40, 210, (12, 16, 3)).astype(np.float32)
    scale = rng.uniform(0.1, 10.0, target.shape)
    x, parts, _ = _run(_quadratic(target, scale), np.full_like(target, 128.0), 60)
    assert np.abs(x - target).max() < 1.0
    assert parts["total"] < 1e-2


def test_no_pixel_moves_more_than_the_step_cap():
    rng = np.random.default_rng(1)
    target = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    x0 = np.full_like(target, 128.0)
    _, _, seen = _run(_quadratic(target, np.ones(target.shape)), x0, 12, max_step_pixels=5.0)
    path = [x0, *seen[1:]]
    moves = [np.abs(b - a).max() for a, b in zip(path, path[1:])]
    assert max(moves) <= 5.0 + 1e-4
    assert max(moves) > 4.0  # the cap was what limited the steps


def test_curvature_is_returned_and_a_seeded_memory_skips_the_warm_up():
    rng = np.random.default_rng(2)
    target = rng.uniform(40, 210, (10, 10, 3)).astype(np.float32)
    scale = rng.uniform(0.5, 20.0, target.shape)
    f = _quadratic(target, scale)
    x0 = np.full_like(target, 128.0)
    memory: optimize.Curvature = []
    _run(f, x0, 15, curvature=memory)
    assert memory and all(s.shape == x0.shape and y.shape == x0.shape for s, y in memory)
    # A fresh start on the same problem: with the learnt curvature, 6 steps get much further.
    _, cold, _ = _run(f, x0, 6)
    _, warm, _ = _run(f, x0, 6, curvature=list(memory))
    assert warm["total"] < 0.5 * cold["total"]


def test_carried_curvature_is_resized_and_its_gradients_scaled_by_area():
    s = np.ones((4, 6, 3), np.float32)
    y = np.full((4, 6, 3), 2.0, np.float32)
    (s2, y2), = _carry_curvature([(s, y)], (4, 6), (8, 12))
    assert s2.shape == y2.shape == (8, 12, 3)
    np.testing.assert_allclose(s2, 1.0, atol=1e-5)
    np.testing.assert_allclose(y2, 0.5, atol=1e-5)  # 2.0 / 4: a quarter of the pixel's share
    # Signed fields keep their sign (no 0..255 clipping as for images).
    neg = images.resize_field(-s, (8, 12))
    assert neg.max() < 0


def test_upsample_adds_back_the_contents_finer_band():
    rng = np.random.default_rng(5)
    content = np.clip(128 + 40 * rng.standard_normal((16, 24, 3)), 0, 255).astype(np.float32)
    small = images.resize_field(content, (8, 12))
    plain = _upsample(small, content, 0.0)
    np.testing.assert_array_equal(plain, images.resize(small, (16, 24)))
    # A coarse scale that reproduced the content exactly gets all of its detail back...
    np.testing.assert_allclose(_upsample(small, content, 1.0), content, atol=1e-3)
    # ...and half the detail lands halfway; the result stays a valid image.
    half = _upsample(small, content, 0.5)
    np.testing.assert_allclose(half, np.clip((plain + content) / 2, 0, 255), atol=0.51)
    assert _upsample(small * 0 + 255, content, 1.0).max() <= 255


def test_a_memory_of_another_shape_is_ignored():
    target = np.full((6, 6, 3), 100.0, np.float32)
    f = _quadratic(target, np.ones(target.shape))
    wrong = [(np.ones((3, 3, 3), np.float32), np.ones((3, 3, 3), np.float32))]
    x, parts, _ = _run(f, np.full_like(target, 50.0), 20, curvature=wrong)
    assert parts["total"] < 1e-2
