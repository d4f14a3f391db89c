"""What one Stylizer holds for a worker: VGG19 features built once (from any thread) and the Gram targets,
bounded in bytes and dropped least recently used first."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from images_factory import STYLE

from nst_core import images, losses
from nst_core import stylizer as stylizer_mod
from nst_core.options import StyleOptions
from nst_core.stylizer import Stylizer

F32 = StyleOptions(precision="float32")


@pytest.fixture()
def fresh(stylizer) -> Stylizer:
    return Stylizer(F32, stylizer._weights, gram_cache_bytes=3 * 1024 * 1024)


def test_gram_cache_is_bounded_in_bytes_least_recently_used_first(fresh):
    style = images.load_image(STYLE)
    one = sum(g.numpy().nbytes for g in fresh.style_targets(F32, "float32", style, (32, 32)))
    assert one > 2 * 1024 * 1024  # five Grams of 64..512 channels, whatever the image size
    fresh.style_targets(F32, "float32", style, (48, 48))  # two entries are over the 3 MiB bound: (32, 32) goes
    assert [k[1] for k in fresh.style_cache.keys()] == [losses.style_hw(style.shape[:2], (48, 48))]
    assert fresh.style_cache.nbytes == one <= 3 * 1024 * 1024
    fresh.style_targets(F32, "float32", style, (48, 48))
    assert (fresh.style_cache_hits, fresh.style_cache_misses) == (1, 2)


def test_gram_cache_keeps_the_recently_used_within_a_larger_bound(stylizer):
    st = Stylizer(F32, stylizer._weights, gram_cache_bytes=8 * 1024 * 1024)  # room for three
    style = images.load_image(STYLE)
    for side in (24, 32, 40):
        st.style_targets(F32, "float32", style, (side, side))
    st.style_targets(F32, "float32", style, (24, 24))  # used again: now the most recent
    st.style_targets(F32, "float32", style, (48, 48))  # the least recently used, (32, 32), goes
    assert [k[1] for k in st.style_cache.keys()] == [losses.style_hw(style.shape[:2], (s, s)) for s in (40, 24, 48)]
    assert st.style_cache.nbytes <= 8 * 1024 * 1024


def test_two_threads_share_one_vgg19_and_one_gram_load(stylizer, monkeypatch):
    built: list[str] = []

    class CountedFeatures(stylizer_mod.VGGFeatures):
        def __init__(self, *a, **k):
            built.append(a[1])
            super().__init__(*a, **k)

    monkeypatch.setattr(stylizer_mod, "VGGFeatures", CountedFeatures)
    st = Stylizer(F32, stylizer._weights)
    style = images.load_image(STYLE)
    got: list = []
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        got.append((st.features("max", "float32"), st.style_targets(F32, "float32", style, (32, 32))))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 2 and built == ["float32"]
    assert got[0][0] is got[1][0] and all(a is b for a, b in zip(got[0][1], got[1][1]))
    assert st.style_cache_misses == 1 and np.isfinite(got[0][1][0].numpy()).all()
