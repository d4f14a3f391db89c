"""Alpha and masks: spatial control of the losses (tiled and untiled), the composite, bad masks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from images_factory import CONTENT, STYLE
from PIL import Image

from nst_core import images, losses, masks, tiling
from nst_core.errors import InputError
from nst_core.losses import feature_layers
from nst_core.options import StyleOptions
from nst_core.stylizer import _levels, _region_args

SMALL = StyleOptions(size=96, steps=4, coarse_steps=4, coarse_steps_power=1, min_size=48)
R0, R1, C0, C1 = 32, 80, 16, 96  # a region on the 16 px grid: every level's weights are exactly 0 or 1


def _content(hw=(96, 128)) -> np.ndarray:
    return images.resize(images.load_image(CONTENT), hw)


def _box_mask(hw, box=(R0, R1, C0, C1)) -> np.ndarray:
    m = np.zeros(hw, np.float32)
    m[box[0]:box[1], box[2]:box[3]] = 1.0
    return m


def test_layer_weights_are_block_means_on_each_grid():
    w = np.zeros((5, 7), np.float32)
    w[0, 0] = 1.0
    lv = masks.layer_weights(w, 2)
    assert [a.shape for a in lv] == [(5, 7), (3, 4), (2, 2)]
    assert lv[1][0, 0] == pytest.approx(0.25) and lv[2][0, 0] == pytest.approx(1 / 16)


def test_masked_gram_equals_the_gram_of_the_region_alone(features32):
    opts = StyleOptions()
    img = _content()
    acts = features32(tf.constant(img[None]), opts.style_layers)
    levels = _levels(_box_mask(img.shape[:2]))
    for name in opts.style_layers:
        k = tiling.level(name)
        s = 2**k
        w = levels[k]
        assert set(np.unique(w)) == {0.0, 1.0}
        region = acts[name][:, R0 // s:R1 // s, C0 // s:C1 // s]
        masked = losses.masked_gram(acts[name], tf.constant(w[None, ..., None])).numpy()
        alone = losses.gram(region).numpy()
        whole = losses.gram(acts[name]).numpy()
        np.testing.assert_allclose(masked, alone, rtol=1e-4, atol=1e-5 * np.abs(alone).max())
        assert np.abs(whole - alone).max() > 1e-2 * np.abs(alone).max()  # the rest of the image would change it


def test_tiled_masked_gram_equals_the_gram_of_the_region_alone(stylizer, features32):
    opts = StyleOptions()
    img = _content()
    acts = features32(tf.constant(img[None]), opts.style_layers)
    levels = _levels(_box_mask(img.shape[:2]))
    tiles = tiling.plan(img.shape[:2], "block5_conv1", 0, core_side=32)
    assert len(tiles) >= 9
    vgg = tiling.TiledVGG(features32, opts.style_layers, None, masked=True)
    grams, _ = vgg.grams(img, tiles, levels)
    for name, g in zip(opts.style_layers, grams):
        s = 2 ** tiling.level(name)
        alone = losses.gram(acts[name][:, R0 // s:R1 // s, C0 // s:C1 // s]).numpy()
        np.testing.assert_allclose(g.numpy(), alone, rtol=1e-4, atol=1e-5 * np.abs(alone).max())


@pytest.mark.parametrize("which", ["shallow", "full"])
def test_tiled_masked_loss_and_gradient_equal_untiled(stylizer, which):
    opts = StyleOptions() if which == "full" else StyleOptions().refine_options()
    hw = (150, 131)
    c = _content(hw)
    x = np.clip(c + np.random.default_rng(0).normal(0, 20, c.shape), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    soft = np.clip(1.2 - np.hypot(yy - 70, xx - 60) / 50, 0, 1).astype(np.float32)  # grey ramp, off the grid
    levels = _levels(soft)
    fn, ct, st, lw, wts = stylizer._problem(opts, "float32", c, [images.load_image(STYLE)], np.array([1.0]), hw,
                                            masked=True)
    untiled = [v.numpy() for v in fn(tf.constant(x[None]), ct, st, lw, wts, _region_args(opts, levels))]
    plain = [v.numpy() for v in stylizer._problem(opts, "float32", c, [images.load_image(STYLE)],
                                                  np.array([1.0]), hw)[0](tf.constant(x[None]), ct, st, lw, wts)]
    assert abs(plain[2] - untiled[2]) > 1e-3 * abs(plain[2])  # the mask changes the style loss
    deepest = max(feature_layers(opts), key=tiling.VGG_LAYERS.index)
    tiles = tiling.plan(hw, deepest, 0, core_side=2 * tiling.halo_and_align(deepest)[1] * (4 if which == "shallow"
                                                                                          else 1))
    assert len(tiles) >= 4
    vgg = tiling.TiledVGG(stylizer.features("max", "float32"), opts.style_layers, opts.content_layer, masked=True)
    tiled = vgg.loss(x, tiles, vgg.content_features(c, tiles), st, lw.numpy(), wts.numpy(), region=levels)
    for u, t in zip(untiled[:4], tiled[:4]):
        assert abs(float(u) - t) <= 1e-5 * abs(float(u)), (untiled[:4], tiled[:4])
    err = np.abs(tiled[4] - untiled[4][0]).max() / np.abs(untiled[4][0]).max()
    assert err < 1e-5, err


def _cutout(hidden: int = 0) -> np.ndarray:
    """The cat photo as a cut-out: a disc with a 2 px soft edge, ``hidden`` colour under the transparent part."""
    c = images.to_uint8(_content((96, 96)))
    yy, xx = np.mgrid[0:96, 0:96]
    a = np.clip((36 - np.hypot(yy - 48, xx - 48)) / 2.0, 0, 1)
    alpha = np.rint(a * 255).astype(np.uint8)
    rgb = np.where((alpha == 0)[..., None], np.uint8(hidden), c)
    return np.dstack([rgb, alpha])


def test_alpha_round_trip(stylizer, tmp_path):
    rgba = _cutout()
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    r = stylizer.stylize(path, STYLE, SMALL)
    assert r.image.shape == (96, 96, 4) and r.has_alpha and r.metrics()["alpha"] == "kept"
    back = np.asarray(Image.open(io.BytesIO(r.png_bytes())))
    assert back.shape == (96, 96, 4)
    np.testing.assert_array_equal(back[..., 3], rgba[..., 3])  # the alpha, exactly
    clear = rgba[..., 3] == 0
    np.testing.assert_array_equal(back[clear], rgba[clear])  # transparent pixels untouched, hidden colour too
    opaque = rgba[..., 3] == 255
    assert np.abs(back[opaque][:, :3].astype(float) - rgba[opaque][:, :3]).mean() > 10  # stylized inside
    assert 0.3 < r.region < 0.5  # the disc's share of the image


def test_hidden_colours_under_transparency_do_not_reach_the_result(stylizer):
    """No halo: black or white under the transparent pixels makes no difference to any visible pixel."""
    black = stylizer.stylize(_cutout(0), STYLE, SMALL).image
    white = stylizer.stylize(_cutout(255), STYLE, SMALL).image
    seen = _cutout()[..., 3] > 0
    np.testing.assert_array_equal(black[seen], white[seen])
    # the bled colours around the edge are the object's: near it they are close to its edge colours
    filled = masks.bleed(_cutout(0)[..., :3].astype(np.float32), _cutout()[..., 3].astype(np.float32) / 255)
    assert filled[48, 8:11].min() > 10  # not the black that was stored there


def test_without_alpha_format_composites_onto_background_and_says_so(stylizer):
    r = stylizer.stylize(_cutout(), STYLE, SMALL.replace(background="#102030"))
    flat = r.image_for(keeps_alpha=False)
    assert flat.shape == (96, 96, 3)
    assert tuple(flat[0, 0]) == (16, 32, 48)  # a transparent corner
    a = r.image[..., 3:4] / 255.0
    np.testing.assert_allclose(flat, np.rint(r.image[..., :3] * a + np.array([16, 32, 48]) * (1 - a)), atol=1)
    assert r.metrics()["alpha"] == "composited onto #102030"
    buf = io.BytesIO()
    Image.fromarray(flat).save(buf, "JPEG")  # what a format without alpha gets
    with pytest.raises(InputError, match="option background: 'nocolour'"):
        StyleOptions(background="nocolour")


def test_outside_the_mask_the_pixels_are_unchanged(stylizer):
    c = _content()
    m = _box_mask(c.shape[:2])
    r = stylizer.stylize(c, STYLE, SMALL.replace(size=128), mask=m, mask_name="box")
    out = r.image.astype(np.float32)
    c8 = images.to_uint8(c).astype(np.float32)
    np.testing.assert_array_equal(out[m == 0], c8[m == 0])
    inside = np.zeros_like(m, bool)
    inside[R0 + 4:R1 - 4, C0 + 4:C1 - 4] = True
    assert np.abs(out - c8)[inside].mean() > 10
    edge = np.abs(out - c8)[R0:R1, C0][:, 0]  # the feathered first column: stylized, but less than inside
    assert 0 < edge.mean() < np.abs(out - c8)[inside].mean()
    assert r.metrics()["mask"] == "box" and r.metrics()["alpha"] == "none"


def test_a_mask_of_another_size_is_resized(stylizer, tmp_path):
    c = _content()
    small = Image.fromarray((_box_mask(c.shape[:2]) * 255).astype(np.uint8)).resize((64, 48), Image.NEAREST)
    path = tmp_path / "mask.png"
    small.save(path)
    r = stylizer.stylize(c, STYLE, SMALL.replace(size=128), mask=path)
    m = _box_mask(c.shape[:2])
    far = np.ones_like(m, bool)
    far[R0 - 4:R1 + 4, C0 - 4:C1 + 4] = False  # beyond the resized edge's blur
    np.testing.assert_array_equal(r.image[far], images.to_uint8(c)[far])
    assert r.image.shape == (96, 128, 3)


def test_grey_blends(stylizer):
    c = _content()
    hw = c.shape[:2]
    full = stylizer.stylize(c, STYLE, SMALL.replace(size=128), mask=np.ones(hw, np.float32)).image.astype(float)
    half = stylizer.stylize(c, STYLE, SMALL.replace(size=128), mask=np.full(hw, 0.5, np.float32)).image.astype(float)
    c8 = images.to_uint8(c).astype(float)
    blend = 0.5 * full + 0.5 * c8
    assert np.abs(half - blend).mean() < 0.6 and np.quantile(np.abs(half - blend), 0.99) <= 2
    assert np.abs(half - c8).mean() > 5 and np.abs(half - full).mean() > 5


def test_bad_masks_are_one_line_errors(stylizer, tmp_path):
    c = _content()
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    with pytest.raises(InputError) as e:
        stylizer.stylize(c, STYLE, SMALL, mask=text, mask_name=str(text))
    assert f"mask {text}" in str(e.value) and "not an image" in str(e.value) and "\n" not in str(e.value)
    black = tmp_path / "black.png"
    Image.new("L", (40, 30), 0).save(black)
    with pytest.raises(InputError, match="all black"):
        stylizer.stylize(c, STYLE, SMALL, mask=black, mask_name=str(black))
    with pytest.raises(InputError, match="not found"):
        stylizer.stylize(c, STYLE, SMALL, mask=tmp_path / "nope.png")
    clear = np.zeros((40, 40, 4), np.uint8)
    with pytest.raises(InputError, match="fully transparent"):
        stylizer.stylize(clear, STYLE, SMALL, content_name="clear.png")


def test_mask_reads_luminance_and_its_own_transparency_as_black():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:, :5, 3] = 255
    m = masks.load_mask(Image.fromarray(rgba, "RGBA"), "m", (10, 10))
    assert m[:, :5].min() == 1.0 and m[:, 5:].max() == 0.0
    grey = masks.load_mask(Image.new("RGB", (4, 4), (128, 128, 128)), "g", (8, 8))
    assert np.allclose(grey, 128 / 255, atol=1e-3)


def test_feather_softens_inward_only():
    m = _box_mask((40, 40), (10, 30, 10, 30))
    f = masks.feathered(m, 2.0)
    assert (f[m == 0] == 0).all() and f[20, 20] == pytest.approx(1.0) and 0.3 < f[20, 10] < 0.7
    assert np.array_equal(masks.feathered(m, 0), m)


def test_fast_mode_applies_mask_and_alpha_after_the_network(tmp_path):
    from nst_core import fast

    net, _ = fast.train_style_network(STYLE, [_content((16, 16))], StyleOptions(size=32),
                                      fast.TrainConfig(steps=1, batch_size=1, crop=16),
                                      arch=fast.Architecture(width=4, blocks=0), style_name=str(STYLE))
    network = fast.load_style_network(fast.save_style_network(net, tmp_path / "n.keras"))
    c = _content()
    m = _box_mask(c.shape[:2])
    r = fast.stylize_with_network(network, c, 128, mask=m, mask_name="box")
    c8 = images.to_uint8(c)
    np.testing.assert_array_equal(r.image[m == 0], c8[m == 0])
    plain = fast.stylize_with_network(network, c, 128).image
    inside = _box_mask(c.shape[:2], (R0 + 4, R1 - 4, C0 + 4, C1 - 4)) == 1
    # the network ran on the whole image: inside, the plain output (c + 1 * (x - c) rounds within 1 level)
    assert np.abs(r.image[inside].astype(int) - plain[inside]).max() <= 1
    assert r.metrics()["mask"] == "box" and np.isfinite(r.losses["style"])
    cut = fast.stylize_with_network(network, _cutout(), 96)
    assert cut.image.shape == (96, 96, 4)
    np.testing.assert_array_equal(cut.image[..., 3], _cutout()[..., 3])


def test_tiled_run_with_a_mask_ends_where_the_untiled_one_does(stylizer, monkeypatch):
    c = images.resize(images.load_image(CONTENT), (157, 203))
    m = _box_mask((157, 203), (20, 130, 30, 170))
    opts = StyleOptions(size=203, look_size=110, steps=2, coarse_steps=2, detail_steps=3, min_size=25)
    plain = stylizer.stylize(c, STYLE, opts, mask=m)
    for cap in ("TILE_PASS_CAP", "UNTILED_PASS_CAP"):
        monkeypatch.setattr(tiling, cap, tiling.pass_bytes((96, 96), "block3_conv1"))
    seen = []
    tiled = stylizer.stylize(c, STYLE, opts, mask=m, progress=lambda e, _: seen.append(e))
    assert max(e["tiles"] for e in seen) >= 4
    np.testing.assert_array_equal(tiled.image[m == 0], images.to_uint8(c)[m == 0])
    assert np.abs(tiled.image.astype(float) - plain.image.astype(float)).mean() < 1.0


def test_mask_output_alpha_cuts_the_stylized_region_out(stylizer):
    c = _content()
    m = _box_mask(c.shape[:2])
    m[R0:R1, C0:C0 + 8] = 0.5
    blend = stylizer.stylize(c, STYLE, SMALL.replace(size=128), mask=m)
    cut = stylizer.stylize(c, STYLE, SMALL.replace(size=128, mask_output="alpha"), mask=m)
    assert cut.image.shape == (96, 128, 4) and cut.metrics()["alpha"] == "kept"
    np.testing.assert_array_equal(cut.image[..., 3], np.rint(m * 255).astype(np.uint8))
    inside = _box_mask(c.shape[:2], (R0 + 4, R1 - 4, C0 + 12, C1 - 4)) == 1
    assert np.abs(cut.image[..., :3][inside].astype(int) - blend.image[inside]).max() <= 1


def test_an_opaque_alpha_channel_comes_back_opaque(stylizer):
    c8 = images.to_uint8(_content((48, 64)))
    rgba = np.dstack([c8, np.full((48, 64), 255, np.uint8)])
    opts = SMALL.replace(size=64)
    r = stylizer.stylize(rgba, STYLE, opts)
    assert r.image.shape == (48, 64, 4) and (r.image[..., 3] == 255).all() and r.metrics()["alpha"] == "kept"
    np.testing.assert_array_equal(r.image[..., :3], stylizer.stylize(c8, STYLE, opts).image)
