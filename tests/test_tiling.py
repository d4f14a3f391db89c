"""Tiles: the tiled loss and gradient equal the untiled ones; sizes, aspect and the budget's limit."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from images_factory import CONTENT, STYLE

from nst_core import images, tiling
from nst_core.errors import InputError
from nst_core.options import VGG_LAYERS, StyleOptions

# Float32 rounding of sums over different groupings: measured ~2e-7 relative; 1e-5 leaves room.
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-5


@pytest.mark.parametrize("hw", [(97, 131), (203, 157), (16, 16), (1, 45)])
@pytest.mark.parametrize("deepest", ["block3_conv1", "block5_conv1"])
def test_cores_cover_every_activation_once(hw, deepest):
    """Every position of every level lies in exactly one tile's core, and halos reach the receptive field."""
    halo, align = tiling.halo_and_align(deepest)
    tiles = tiling.plan(hw, deepest, 0, core_side=2 * align)
    for k in range(tiling.level(deepest) + 1):
        s = 2**k
        count = np.zeros((-(-hw[0] // s), -(-hw[1] // s)), int)
        for t in tiles:
            rows, cols = t.core_slice(k)
            count[rows, cols] += 1
            top, left, h, w = t.box(k)
            assert (h, w) == count[rows, cols].shape and top >= 0 and left >= 0
        assert (count == 1).all()
    for t in tiles:
        assert t.y0 % align == 0 and t.x0 % align == 0
        assert t.oy0 in (0, t.y0 - halo) and t.ox0 in (0, t.x0 - halo)
        assert t.oy1 in (hw[0], t.y1 + halo) and t.ox1 in (hw[1], t.x1 + halo)
    assert halo >= tiling.receptive_radius(deepest)


def _both(stylizer, opts: StyleOptions, hw: tuple[int, int], budget: int):
    c = images.resize(images.load_image(CONTENT), hw)
    x = np.clip(c + np.random.default_rng(0).normal(0, 20, c.shape), 0, 255).astype(np.float32)
    fn, ct, st, lw, wts = stylizer._problem(opts, "float32", c, [images.load_image(STYLE)], np.array([1.0]), hw)
    untiled = [v.numpy() for v in fn(tf.constant(x[None]), ct, st, lw, wts)]
    deepest = max((*opts.style_layers, opts.content_layer), key=VGG_LAYERS.index)
    tiles = tiling.plan(hw, deepest, budget, min_core=8)
    vgg = tiling.TiledVGG(stylizer.features("max", "float32"), opts.style_layers, opts.content_layer)
    c_feats = vgg.content_features(c, tiles)
    np.testing.assert_allclose(c_feats, ct.numpy()[0], rtol=0, atol=1e-6 * np.abs(c_feats).max())
    tiled = vgg.loss(x, tiles, c_feats, st, lw.numpy(), wts.numpy())
    return tiles, untiled, tiled


@pytest.mark.parametrize("which,hw,tile_side", [("shallow", (101, 90), 48), ("full", (283, 250), 250)])
def test_tiled_loss_and_gradient_equal_untiled(stylizer, which, hw, tile_side):
    opts = StyleOptions()
    opts = opts.refine_options() if which == "shallow" else opts
    deepest = max((*opts.style_layers, opts.content_layer), key=VGG_LAYERS.index)
    tiles, untiled, tiled = _both(stylizer, opts, hw, tiling.pass_bytes((tile_side, tile_side), deepest))
    assert len(tiles) >= 9
    # Windows smaller than the image, so halos cut real activations (both sides, where the halo allows).
    assert any(t.oy1 - t.oy0 < hw[0] and t.ox1 - t.ox0 < hw[1] for t in tiles)
    assert which == "full" or any(0 < t.oy0 and t.oy1 < hw[0] and 0 < t.ox0 and t.ox1 < hw[1] for t in tiles)
    for u, t in zip(untiled[:4], tiled[:4]):
        assert abs(float(u) - t) <= LOSS_RTOL * abs(float(u)), (untiled[:4], tiled[:4])
    g_untiled, g_tiled = untiled[4][0], tiled[4]
    err = np.abs(g_tiled - g_untiled).max() / np.abs(g_untiled).max()
    assert err < GRAD_RTOL, err


def test_halo_too_small_would_be_wrong(stylizer, monkeypatch):
    """The exactness test can fail: with halos one level short, the gradient is visibly off."""
    monkeypatch.setattr(tiling, "halo_and_align", lambda deepest: (4, 4))
    opts = StyleOptions().refine_options()
    _, untiled, tiled = _both_unchecked(stylizer, opts, (101, 90))
    err = np.abs(tiled[4] - untiled[4][0]).max() / np.abs(untiled[4][0]).max()
    assert err > 100 * GRAD_RTOL


def _both_unchecked(stylizer, opts, hw):
    c = images.resize(images.load_image(CONTENT), hw)
    x = np.clip(c + np.random.default_rng(0).normal(0, 20, c.shape), 0, 255).astype(np.float32)
    fn, ct, st, lw, wts = stylizer._problem(opts, "float32", c, [images.load_image(STYLE)], np.array([1.0]), hw)
    untiled = [v.numpy() for v in fn(tf.constant(x[None]), ct, st, lw, wts)]
    tiles = tiling.plan(hw, "block3_conv1", tiling.pass_bytes((48, 48), "block3_conv1"), min_core=8)
    vgg = tiling.TiledVGG(stylizer.features("max", "float32"), opts.style_layers, opts.content_layer)
    return tiles, untiled, vgg.loss(x, tiles, vgg.content_features(c, tiles), st, lw.numpy(), wts.numpy())


def test_tiled_run_keeps_odd_size_and_aspect(stylizer, monkeypatch):
    content = images.resize(images.load_image(CONTENT), (157, 203))
    opts = StyleOptions(size=203, look_size=110, steps=2, coarse_steps=2, detail_steps=3, min_size=25)
    plain = stylizer.stylize(content, STYLE, opts)
    assert all(e["tiles"] == 1 for e in plain.trace)
    for cap in ("TILE_PASS_CAP", "UNTILED_PASS_CAP"):
        monkeypatch.setattr(tiling, cap, tiling.pass_bytes((96, 96), "block3_conv1"))
    seen = []
    r = stylizer.stylize(content, STYLE, opts, progress=lambda e, _: seen.append(e))
    assert r.image.shape == (157, 203, 3)
    detail = [e for e in seen if e["stage"] == "detail"]
    assert len(detail) == 3 and all(e["tiles"] >= 4 for e in detail)
    assert (detail[-1]["height"], detail[-1]["width"]) == (157, 203)
    assert {"scale", "height", "width", "stage", "tiles"} <= set(seen[0])
    # Same objective, same gradient: the tiled run ends where the untiled one does (the L-BFGS memory is
    # float32 when tiled, so not bit for bit).
    diff = np.abs(r.image.astype(float) - plain.image.astype(float)).mean()
    assert diff < 1.0, diff


def test_size_beyond_the_budget_is_rejected_before_work(stylizer):
    seen = []
    with pytest.raises(InputError) as e:
        stylizer.stylize(CONTENT, STYLE, StyleOptions(size=4096, memory_budget=1500),
                         progress=lambda entry, _: seen.append(entry), content_name="big.jpg")
    msg = str(e.value)
    assert "big.jpg" in msg and "1500 MB" in msg and "memory_budget" in msg and "\n" not in msg
    assert not seen


def test_an_8gb_budget_serves_4096_in_tiles_and_auto_is_40_percent_of_available(monkeypatch):
    hw = images.fit_size((3, 4), 4096)
    tiles = tiling.plan_scale(hw, "block3_conv1", "block3_conv1", 8000 * tiling.MB)
    assert len(tiles) > 1
    assert max(tiling.pass_bytes((t.oy1 - t.oy0, t.ox1 - t.ox0), "block3_conv1") for t in tiles) <= tiling.TILE_PASS_CAP
    monkeypatch.setattr(tiling, "available_bytes", lambda: 20000 * tiling.MB)
    assert tiling.budget_bytes(0) == 8000 * tiling.MB
    assert tiling.budget_bytes(1234) == 1234 * tiling.MB


def test_a_tiny_output_fits_a_tiny_budget_untiled():
    """The runtime (TensorFlow, weights) is not charged to the pair: 64 MB serve a 32x40 output whole."""
    tiles = tiling.plan_scale((32, 40), "block5_conv1", "block4_conv2", 64 * tiling.MB)
    assert tiles == [tiling.Tile(0, 32, 0, 40, 0, 32, 0, 40)]
    assert tiling.peak_bytes((32, 40), tiles, "block5_conv1", "block4_conv2") < tiling.RUNTIME_BYTES + 64 * tiling.MB


@pytest.mark.parametrize("side", [2048, 4096])
def test_the_planned_peak_stays_within_the_budget_and_grows_with_pixels(side):
    budget = 6000 * tiling.MB
    peaks = []
    for hw in (images.fit_size((3, 4), side), (side, side)):
        tiles = tiling.plan_scale(hw, "block3_conv1", "block3_conv1", budget)
        peak = tiling.peak_bytes(hw, tiles, "block3_conv1", "block3_conv1")
        assert len(tiles) > 1 and peak - tiling.RUNTIME_BYTES <= budget
        peaks.append(peak - tiling.RUNTIME_BYTES - tiling.pass_bytes(
            max(((t.oy1 - t.oy0, t.ox1 - t.ox0) for t in tiles), key=lambda s: s[0] * s[1]), "block3_conv1"))
    # The image-sized state scales with the pixel count (4:3 vs square), the tile pass does not.
    assert peaks[1] / peaks[0] == pytest.approx(4 / 3, rel=0.01)


def test_a_budget_that_forces_tiles_gives_the_same_picture(monkeypatch):
    # The L-BFGS memory is chosen by the scale's size, not by tiling: a machine with less free RAM tiles
    # more but paints the same picture (float32 rounding of the tile sums aside). In float32: bfloat16
    # tile sums round differently enough for L-BFGS to drift 0.5 levels over 30 steps.
    from nst_core import Stylizer

    stylizer = Stylizer(StyleOptions(precision="float32"))
    content = images.resize(images.load_image(CONTENT), (120, 160))
    # the whole schedule spelled out (40:20 80:12 160:8), so a change of defaults does not move the drift measured
    opts = StyleOptions(size=160, look_size=160, steps=8, coarse_steps=8, coarse_steps_power=0.75, min_size=40,
                        style_layers=("block1_conv1", "block2_conv1", "block3_conv1"), content_layer="block3_conv1")
    plain = stylizer.stylize(content, STYLE, opts)
    for cap in ("TILE_PASS_CAP", "UNTILED_PASS_CAP"):
        monkeypatch.setattr(tiling, cap, tiling.pass_bytes((96, 96), "block3_conv1"))
    tiled = stylizer.stylize(content, STYLE, opts)
    assert max(e["tiles"] for e in tiled.trace) > 1 and max(e["tiles"] for e in plain.trace) == 1
    diff = np.abs(tiled.image.astype(float) - plain.image.astype(float))
    assert diff.mean() < 0.05 and abs(tiled.losses["total"] - plain.losses["total"]) <= 1e-3 * plain.losses["total"]


@pytest.mark.parametrize("hw", [(300, 517), (130, 40), (2, 9)])
def test_chunked_tv_equals_tensorflows(hw, monkeypatch):
    from nst_core import losses

    monkeypatch.setattr(tiling, "TV_ROWS", 64)  # several chunks, the last one short
    x = np.random.default_rng(1).uniform(0, 255, (*hw, 3)).astype(np.float32)
    t = tf.constant(x[None])
    with tf.GradientTape() as tape:
        tape.watch(t)
        want = losses.tv_loss(t)
    want_g = tape.gradient(want, t).numpy()[0]
    tv, g = tiling.tv_and_grad(x, 3.0)
    assert abs(tv - float(want)) <= 1e-6 * float(want)
    assert np.abs(g - 3.0 * want_g).max() <= 1e-5 * np.abs(3.0 * want_g).max()
