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


def run(pair, monkeypatch, ahead: bool):
    st = Stylizer(OPTS)
    threads: list[str] = []
    made = st._targets

    def recording(*args):
        threads.append(threading.current_thread().name)
        return made(*args)

    monkeypatch.setattr(st, "_targets", recording)
    if not ahead:
        monkeypatch.setattr(st, "_targets_ahead", lambda *args, **kwargs: None)
    return st.stylize(*pair, OPTS), threads


def test_targets_made_ahead_give_the_same_picture(pair, monkeypatch):
    ahead, ahead_threads = run(pair, monkeypatch, ahead=True)
    inline, inline_threads = run(pair, monkeypatch, ahead=False)
    scales = len(OPTS.stages())
    assert scales == 3
    # the first scale's in line; each later scale's and the final evaluation's ahead
    assert ahead_threads[0] == threading.current_thread().name
    assert all(name.startswith("nst-targets") for name in ahead_threads[1:]) and len(ahead_threads) == scales + 1
    assert inline_threads == [threading.current_thread().name] * (scales + 1)
    assert np.array_equal(ahead.image, inline.image)
    assert ahead.losses == inline.losses


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
    assert st._targets_ahead(job, *args, room=0) is None  # made in line, after this scale's steps
    made = st._targets_ahead(job, *args, room=1 << 40)
    c_target, s_targets = made.result()
    assert c_target.shape[1:3] == (6, 8) and len(s_targets) == len(OPTS.style_layers)
