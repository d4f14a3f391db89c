"""kernels=constant|argument|auto: VGG19's kernels as graph constants change the speed, never the picture."""

import numpy as np
import pytest
from images_factory import CONTENT, STYLE

from nst_core import StyleOptions, images, stylizer
from nst_core.stylizer import Stylizer

SMALL = {"size": 32, "num_scales": 1, "steps": 4}


def kernel_captures(st: Stylizer, constant: bool) -> list[tuple[int, ...]]:
    """Shapes of the 4-D tensors the traced loss function of that kind takes from outside its graph."""
    (fn,) = [f for key, f in st._loss_fns.items() if key[-2:] == (True, constant)]
    return [tuple(t.shape) for t in fn.get_concrete_function().captured_inputs if len(t.shape) == 4]


@pytest.fixture(scope="module")
def pair():
    return images.resize(images.load_image(CONTENT), (24, 32)), images.resize(images.load_image(STYLE), (32, 32))


def test_constant_kernels_are_in_the_graph_and_give_the_same_image(pair):
    content, style = pair
    results, captures = {}, {}
    for kernels in ("argument", "constant"):
        st = Stylizer(StyleOptions(kernels=kernels, **SMALL))
        results[kernels] = st.stylize(content, style).image.astype(int)
        captures[kernels] = kernel_captures(st, kernels == "constant")
    assert (3, 3, 64, 64) in captures["argument"]  # passed in: each call reorders them
    assert captures["constant"] == []
    assert np.abs(results["constant"] - results["argument"]).max() <= 1


def test_auto_switches_to_constants_between_pairs_once_a_function_has_run_enough(pair, monkeypatch):
    monkeypatch.setattr(stylizer, "CONSTANT_KERNELS_AFTER", 6)
    content, style = pair
    st = Stylizer(StyleOptions(precision="bfloat16", **SMALL))  # auto switches only in bfloat16 (emulated on AVX2)
    assert st.kernels == "auto"
    first = st.stylize(content, style).image  # 4 steps: below the threshold
    # two scales of the same loss function: 4 + 3 steps after the first, but a pair never switches midway
    two_scales = StyleOptions(**{**SMALL, "num_scales": 2, "min_size": 16, "coarse_steps": 1, "refine": "full"})
    st.stylize(content, style, two_scales)
    assert st._steps_run[st._fn_key(two_scales, st.precision, False)] >= 10
    assert {key[-1] for key in st._loss_fns if key[-2] is True} == {False}
    third = st.stylize(content, style).image
    assert {key[-1] for key in st._loss_fns if key[-2] is True} == {False, True}
    assert np.abs(third.astype(int) - first.astype(int)).max() <= 1


def test_one_pair_and_explicit_choices_resolve(pair):
    assert Stylizer(StyleOptions(), one_pair=True).kernels == "argument"  # nst-stylize and stylize()
    assert Stylizer(StyleOptions(kernels="constant"), one_pair=True).kernels == "constant"
    assert Stylizer(StyleOptions(kernels="argument")).kernels == "argument"
    assert Stylizer(StyleOptions(precision="float32")).kernels == "argument"  # constants were no faster there
    assert Stylizer(StyleOptions(precision="float32", kernels="constant")).kernels == "constant"
