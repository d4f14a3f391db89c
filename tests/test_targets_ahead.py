"""The next scale's targets (and the final evaluation's) are made in a background thread during a scale's steps:
the same picture and losses as made in line, and a failure there is the pair's error."""

import threading

import numpy as np
import pytest
from images_factory import CONTENT, STYLE

from nst_core import StyleOptions, images
from nst_core.stylizer import Stylizer

OPTS = StyleOptions(size=64, num_scales=3, min_size=16, steps=3, coarse_steps=3)


@pytest.fixture(scope="module")
def pair():
    return images.resize(images.load_image(CONTENT), (48, 64)), images.resize(images.load_image(STYLE), (64, 64))


def run(pair, monkeypatch, ahead: bool = True, shared: bool = True):
    """The result and, per call that made targets, its thread and how many objectives it served."""
    st = Stylizer(OPTS)
    calls: list[tuple[str, int]] = []
    made, made_both = st._targets, st._shared_targets

    def recording(*args):
        calls.append((threading.current_thread().name, 1))
        return made(*args)

    def recording_both(*args):
        calls.append((threading.current_thread().name, 2))
        return made_both(*args)

    monkeypatch.setattr(st, "_targets", recording)
    monkeypatch.setattr(st, "_shared_targets", recording_both)
    if not ahead:
        monkeypatch.setattr(st, "_targets_ahead", lambda *args, **kwargs: (None, None))
    if not shared:
        monkeypatch.setattr(st, "_shares_passes", lambda *args: False)
    return st.stylize(*pair, OPTS), calls


def test_targets_made_ahead_give_the_same_picture(pair, monkeypatch):
    ahead, ahead_calls = run(pair, monkeypatch, shared=False)
    inline, inline_calls = run(pair, monkeypatch, ahead=False)
    scales = len(OPTS.stages())
    assert scales == 3
    # the first scale's in line; each later scale's and the final evaluation's ahead
    assert ahead_calls[0] == (threading.current_thread().name, 1)
    assert all(name.startswith("nst-targets") for name, _ in ahead_calls[1:]) and len(ahead_calls) == scales + 1
    assert inline_calls == [(threading.current_thread().name, 1)] * (scales + 1)
    assert np.array_equal(ahead.image, inline.image)
    assert ahead.losses == inline.losses


def test_the_shallow_final_scale_and_the_evaluation_share_their_forward_passes(pair, monkeypatch):
    shared, shared_calls = run(pair, monkeypatch)
    apart, _ = run(pair, monkeypatch, shared=False)
    # the first scale's in line, the second's ahead, then one call for the final scale and the evaluation
    assert [n for _, n in shared_calls] == [1, 1, 2]
    assert all(name.startswith("nst-targets") for name, _ in shared_calls[1:])
    assert np.array_equal(shared.image, apart.image)  # the same targets, to the bit
    assert shared.losses == apart.losses


def test_shared_targets_are_those_made_apart(pair):
    st = Stylizer(OPTS)
    final, evaluation = OPTS.refine_options(), OPTS
    assert final is not None and final.style_layers != evaluation.style_layers
    content, style = images.resize(pair[0], (48, 64)), [pair[1]]
    one = np.array([1.0])
    (c_final, g_final), (c_eval, g_eval) = st._shared_targets(final, evaluation, st.precision, content, style, one,
                                                              (48, 64))
    for opts, (c, grams) in ((final, (c_final, g_final)), (evaluation, (c_eval, g_eval))):
        fresh = Stylizer(OPTS)  # no cached Grams
        c_apart, g_apart = fresh._targets(opts, fresh.precision, content, style, one, (48, 64))
        assert np.array_equal(c.numpy(), c_apart.numpy())
        assert len(grams) == len(opts.style_layers)
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(grams, g_apart))
    # both objectives' Grams are cached: a later pair with this style makes none
    assert len(st.style_cache) == 2


def test_a_failure_while_making_targets_ahead_is_the_pairs_error(pair, monkeypatch):
    st = Stylizer(OPTS)
    made = st._targets

    def failing(*args):
        if threading.current_thread().name.startswith("nst-targets"):
            raise MemoryError("no room for the next scale's targets")
        return made(*args)

    monkeypatch.setattr(st, "_targets", failing)
    with pytest.raises(MemoryError, match="next scale"):
        st.stylize(*pair, OPTS)
    monkeypatch.setattr(st, "_targets", made)
    assert st.stylize(*pair, OPTS).image.shape == (48, 64, 3)  # the Stylizer still serves


def test_targets_are_made_ahead_only_where_their_passes_fit_beside_the_current_scale(pair):
    st = Stylizer(OPTS)
    job = (OPTS, (48, 64), None)
    args = (st.precision, pair[0], [pair[1]], np.array([1.0]), 1 << 40, "content")
    assert st._targets_ahead([job], *args, room=0) == (None, None)  # made in line, after this scale's steps
    made, after = st._targets_ahead([job], *args, room=1 << 40)
    assert after is None
    c_target, s_targets = made.result()
    assert c_target.shape[1:3] == (6, 8) and len(s_targets) == len(OPTS.style_layers)


def test_a_shallow_objective_shares_its_passes_only_where_the_deeper_ones_fit_too(pair):
    from nst_core import tiling
    from nst_core.options import VGG_LAYERS

    st = Stylizer(OPTS)
    final = OPTS.refine_options()
    hw = (48, 64)
    args = (st.precision, pair[0], [pair[1]], np.array([1.0]), 1 << 40, "content")
    jobs = [(final, hw, None), (OPTS, hw, None)]
    dtype_bytes = st.features(OPTS.pooling).dtype.size
    deepest = max((*final.style_layers, final.content_layer), key=VGG_LAYERS.index)
    shallow = tiling.pass_bytes(hw, deepest, dtype_bytes, backward=False)
    made, after = st._targets_ahead(jobs, *args, room=shallow)  # room for the shallow passes only
    assert after is None and made.result()[0].shape[1:3] == (12, 16)
    made, after = st._targets_ahead(jobs, *args, room=1 << 40)
    assert after is not None and after.result()[0].shape[1:3] == (6, 8)  # block4_conv2, the evaluation's
    assert made.result()[0].shape[1:3] == (12, 16)  # block3_conv1, the shallow scale's
    # another size, or a style layer the later objective lacks: apart
    assert st._targets_ahead([jobs[0], (OPTS, (24, 32), None)], *args, room=1 << 40)[1] is None
    narrower = OPTS.replace(style_layers=("block1_conv1",))
    assert st._targets_ahead([jobs[0], (narrower, hw, None)], *args, room=1 << 40)[1] is None
