"""The engine end to end on real VGG19 weights, at small sizes."""

import json

import numpy as np
import pytest
from images_factory import CONTENT, STYLE

from nst_core import color, images, optimize
from nst_core.errors import InputError, NumericalError
from nst_core.metrics import distances
from nst_core.options import StyleOptions

TINY = StyleOptions(size=48, steps=4, coarse_steps=2, min_size=24)


def test_same_seed_same_image(stylizer):
    o = TINY.replace(init="noise", seed=3)
    a = stylizer.stylize(CONTENT, STYLE, o).image
    b = stylizer.stylize(CONTENT, STYLE, o).image
    c = stylizer.stylize(CONTENT, STYLE, o.replace(seed=4)).image
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("precision", ["auto", "bfloat16"])
def test_128px_run_moves_style_down_and_keeps_content(stylizer, features32, tmp_path, precision):
    """Also in mixed bfloat16, which ``auto`` picks on AMX CPUs (on others it is emulated, but the
    engine's own gradients keep it about as fast as float32)."""
    from nst_core import Stylizer

    o = StyleOptions(size=128, steps=60, coarse_steps=15, coarse_steps_power=1, min_size=64)  # 30 steps at 64px
    engine = stylizer if precision == "auto" else Stylizer(o.replace(precision=precision))
    r = engine.stylize(CONTENT, STYLE, o)
    assert r.precision == engine.precision
    out = tmp_path / "out.png"
    r.save(out)
    before = distances(images.resize(images.load_image(CONTENT), r.image.shape[:2]), CONTENT, STYLE, features32)
    after = distances(out, CONTENT, STYLE, features32)
    unrelated = distances(images.resize(images.load_image(STYLE), r.image.shape[:2]), CONTENT, STYLE, features32)
    assert after["style"] < 0.5 * before["style"], (before, after)
    # Still the cat: much closer in content than an unrelated picture (the painting itself).
    assert after["content"] < 0.75 * unrelated["content"], (after, unrelated)
    assert r.steps == 90 and len(r.trace) == 90
    assert r.trace[-1]["total"] < r.trace[0]["total"]


def test_style_targets_cached_across_pairs(stylizer):
    o = TINY.replace(seed=11)
    hits, misses = stylizer.style_cache_hits, stylizer.style_cache_misses
    stylizer.stylize(CONTENT, STYLE, o)
    lookups = stylizer.style_cache_hits - hits + stylizer.style_cache_misses - misses
    assert lookups >= len(o.scales())  # one per scale, plus the final full-objective evaluation
    hits, misses = stylizer.style_cache_hits, stylizer.style_cache_misses
    stylizer.stylize(images.load_image(CONTENT)[::-1], STYLE, o)  # another content, same style
    assert stylizer.style_cache_hits == hits + lookups  # every Gram target served from the cache
    assert stylizer.style_cache_misses == misses


def test_blend_of_two_styles(stylizer):
    scream = STYLE.parent / "the_scream.jpg"
    one = stylizer.stylize(CONTENT, STYLE, TINY).image
    blend = stylizer.stylize(CONTENT, [STYLE, scream], TINY.replace(style_blend=(0.7, 0.3))).image
    assert blend.shape == one.shape and not np.array_equal(one, blend)
    with pytest.raises(InputError, match="style_blend"):
        stylizer.stylize(CONTENT, [STYLE, scream], TINY.replace(style_blend=(1.0,)))


def test_luminance_transfer_keeps_content_colours(stylizer):
    r = stylizer.stylize(CONTENT, STYLE, TINY.replace(preserve_colors="luminance", steps=8))
    c = images.resize(images.load_image(CONTENT), r.image.shape[:2])
    iq_out = color.rgb_to_yiq(r.image.astype(np.float32))[..., 1:]
    iq_in = color.rgb_to_yiq(c)[..., 1:]
    assert np.abs(iq_out - iq_in).mean() < 3.0
    # histogram: the style is recoloured to the content's colours first, so the result's colour
    # statistics come much closer to the content's than a plain transfer's do
    h = stylizer.stylize(CONTENT, STYLE, TINY.replace(preserve_colors="histogram")).image.astype(np.float32)
    plain = stylizer.stylize(CONTENT, STYLE, TINY).image.astype(np.float32)

    def colour_gap(img: np.ndarray) -> float:
        a, b = img.reshape(-1, 3), c.reshape(-1, 3)
        return float(np.abs(a.mean(0) - b.mean(0)).sum() + np.abs(a.std(0) - b.std(0)).sum())

    assert colour_gap(h) < 0.5 * colour_gap(plain), (colour_gap(h), colour_gap(plain))


def test_result_carries_provenance_and_metrics(stylizer, tmp_path):
    r = stylizer.stylize(CONTENT, STYLE, TINY.replace(seed=5, refine="full"))  # one objective at every scale
    text = images.read_png_text(r.png_bytes())
    assert json.loads(text["nst:options"])["size"] == 48
    assert text["nst:seed"] == "5"
    assert "tensorflow" in json.loads(text["nst:versions"])
    m = json.loads(r.metrics_json())
    assert set(m["losses"]) == {"content", "style", "tv", "total"}
    assert len(m["trace"]) == m["steps"] == r.steps
    # The reported losses are re-evaluated on the best image: no worse than the last step's (bf16 noise aside).
    assert m["losses"]["total"] <= 1.02 * min(e["total"] for e in r.trace if e["scale"] == r.trace[-1]["scale"])
    assert max(r.image.shape[:2]) == 48


def test_adam_and_init_choices(stylizer):
    one = TINY.replace(num_scales=1, optimizer="adam", learning_rate=4.0)
    hw = (32, 48)
    starts = {
        "content": images.to_uint8(images.resize(images.load_image(CONTENT), hw)),
        "style": images.to_uint8(images.resize(images.load_image(STYLE), hw)),
    }
    for init in ("content", "noise", "style"):
        start = stylizer.stylize(CONTENT, STYLE, one.replace(init=init, steps=0)).image  # no step: the start
        if init in starts:
            assert np.array_equal(start, starts[init]), init
        else:  # 128 +- 40 grey noise, seeded
            assert abs(start.mean() - 128) < 8 and 30 < start.std() < 50
        r = stylizer.stylize(CONTENT, STYLE, one.replace(init=init, steps=12))
        assert r.image.shape == (*hw, 3) and np.abs(r.image.astype(float) - start).mean() > 1.0, init
        assert r.trace[-1]["total"] < r.trace[0]["total"], (init, r.trace[0]["total"], r.trace[-1]["total"])


def test_numerical_failure_retried_in_float32(stylizer, monkeypatch):
    calls = {"n": 0}
    real = optimize.lbfgs

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise NumericalError("loss became nan at step 3")
        return real(*a, **k)

    monkeypatch.setattr(optimize, "lbfgs", flaky)
    r = stylizer.stylize(CONTENT, STYLE, TINY)
    assert "retried" in r.retried and r.precision == "float32"
    assert np.isfinite(r.image).all()


def test_bad_content_named(stylizer, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="x.jpg"):
        stylizer.stylize(bad, STYLE, TINY)


def test_init_image_given_as_path_or_bytes_gives_the_same_result(stylizer):
    o = TINY.replace(init=str(STYLE))
    from_path = stylizer.stylize(CONTENT, STYLE, o).image
    from_bytes = stylizer.stylize(CONTENT, STYLE, o, init_image=STYLE.read_bytes()).image
    assert np.array_equal(from_path, from_bytes)
    with pytest.raises(InputError, match="init image"):
        stylizer.stylize(CONTENT, STYLE, o.replace(init="/no/such/start.png"))


def test_shallow_refine_reports_losses_on_the_configured_layers(stylizer):
    shallow = stylizer.stylize(CONTENT, STYLE, TINY)
    assert [e["stage"] for e in shallow.trace][-1] == "refine"
    assert {e["stage"] for e in shallow.trace if e["scale"] == 0} == {"full"}
    # The final losses are recomputed with the full objective on the returned image.
    f, c, s, lw, w = stylizer._problem(TINY, stylizer.precision, images.resize(images.load_image(CONTENT),
                                       shallow.image.shape[:2]), [images.load_image(STYLE)], np.array([1.0]),
                                       shallow.image.shape[:2])
    import tensorflow as tf
    total = f(tf.constant(shallow.image[None].astype(np.float32)), c, s, lw, w)[0]
    assert abs(float(total) - shallow.losses["total"]) < 0.02 * abs(shallow.losses["total"]) + 1e-3
    full = stylizer.stylize(CONTENT, STYLE, TINY.replace(refine="full"))
    assert {e["stage"] for e in full.trace} == {"full"}


def test_an_extreme_aspect_ratio_gives_an_image(stylizer):
    """40x5000 px at size 512: the coarse scales are 1 and 2 px high, where the smoothness term has no
    vertical neighbours (it once made every loss NaN at step 0, twice)."""
    photo = images.resize(images.load_image(CONTENT), (3333, 5000))
    strip = photo[1600:1640]
    r = stylizer.stylize(strip, STYLE, StyleOptions(size=512, steps=3, coarse_steps=4))
    assert r.image.shape == (4, 512, 3) and not r.retried
    assert [(e["height"], e["width"]) for e in r.trace][0] == (1, 64)
    assert all(np.isfinite(v) for v in r.losses.values())
