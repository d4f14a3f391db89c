"""The schedule across output sizes: the look is set at a fixed resolution, finer scales add detail."""

from __future__ import annotations

import pytest

from nst_core.features import conv_flops
from nst_core.options import REFINE_LAYER, VGG_LAYERS, StyleOptions

SIZES = (513, 700, 1024, 1500, 2048, 3000, 4096)


def _cost(o: StyleOptions) -> float:
    """Forward FLOPs of all steps (a step is forward + input gradient, ~ 2x: a constant factor)."""
    deepest = max((*o.style_layers, o.content_layer), key=VGG_LAYERS.index)
    total = 0.0
    for side, steps, stage in o.stages():
        hw = (side, side * 3 // 4)
        total += steps * conv_flops(hw, deepest if stage == "full" else REFINE_LAYER)
    return total


def test_outputs_up_to_look_size_run_the_default_schedule():
    assert StyleOptions(size=512).schedule() == [(64, 22), (128, 15), (256, 11), (512, 22)]
    assert StyleOptions(size=256).schedule() == [(32, 30), (64, 22), (128, 15), (256, 12)]
    assert [s for _, _, s in StyleOptions(size=512).stages()] == ["full", "full", "full", "refine"]


@pytest.mark.parametrize("size", SIZES)
def test_large_outputs_run_the_look_size_schedule_first(size):
    o = StyleOptions(size=size)
    look = StyleOptions(size=o.look_size).stages()
    stages = o.stages()
    assert stages[: len(look)] == look  # the look: same coarse sides and steps whatever the output size
    detail = stages[len(look):]
    assert detail and all(stage == "detail" and steps == o.detail_steps for _, steps, stage in detail)
    sides = [s for s, _, _ in stages]
    assert sides[-1] == size and sides == sorted(set(sides))  # strictly growing, ending at the output
    assert all(b <= 2 * a for a, b in zip(sides, sides[1:]))  # at most doubling, so no scale is skipped
    assert all(s > o.look_size for s, _, _ in detail)


def test_cost_grows_about_linearly_with_pixels():
    per_px = {s: _cost(StyleOptions(size=s)) / (s * s) for s in (1024, 2048, 4096)}
    # Per output pixel the cost falls (the fixed look is amortised) and tends to a constant.
    assert per_px[1024] >= per_px[2048] >= per_px[4096]
    assert per_px[4096] > 0.6 * per_px[2048]
    ratio = _cost(StyleOptions(size=4096)) / _cost(StyleOptions(size=2048))
    assert 2.5 < ratio < 4.5, ratio


def test_look_size_and_detail_steps_are_options():
    o = StyleOptions(size=2048, look_size=1024, detail_steps=3)
    assert [s for s, _, _ in o.stages()] == [128, 256, 512, 1024, 2048]
    assert o.stages()[-1] == (2048, 3, "detail")
    assert StyleOptions(size=1024, look_size=1024).stages()[-1][2] == "refine"
