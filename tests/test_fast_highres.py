"""Fast mode above look_size: the network runs at the look size and the output keeps its look."""

from __future__ import annotations

import numpy as np
import pytest
from images_factory import CONTENT, STYLE

from nst_core import fast, images
from nst_core.options import StyleOptions


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    content = images.resize(images.load_image(CONTENT), (32, 32))
    cfg = fast.TrainConfig(steps=2, batch_size=1, crop=32, learning_rate=0.01)
    model, _ = fast.train_style_network(STYLE, [content], StyleOptions(size=32), cfg,
                                        arch=fast.Architecture(width=8, blocks=1), style_name=str(STYLE))
    return fast.save_style_network(model, tmp_path_factory.mktemp("m") / "starry.keras")


def test_large_output_is_the_look_size_output_with_detail(saved):
    net = fast.load_style_network(saved)
    content = images.resize(images.load_image(CONTENT), (451, 677))  # odd sides
    big = fast.stylize_with_network(net, content, 1031, compute_losses=False)
    assert big.image.shape == (687, 1031, 3)
    look_hw = images.fit_size(content.shape[:2], 512)
    look = fast.apply_network(net.model, images.resize(content, look_hw))
    back = images.resize(big.image.astype(np.float32), look_hw)
    assert np.abs(back - look).mean() < 2.0  # resized to the look's size it is the look
    plain = images.resize(look, big.image.shape[:2])
    assert np.abs(big.image - plain).mean() > 0.5  # and it carries detail a plain upscale does not


def test_outputs_up_to_look_size_run_the_network_at_their_size(saved):
    net = fast.load_style_network(saved)
    res = fast.stylize_with_network(net, CONTENT, 96, compute_losses=False)
    direct = fast.apply_network(net.model, images.resize(images.load_image(CONTENT), res.image.shape[:2]))
    assert np.array_equal(res.image, images.to_uint8(direct))


def test_a_size_the_memory_budget_cannot_serve_is_refused_before_it_runs(saved):
    net = fast.load_style_network(saved)
    content = images.resize(images.load_image(CONTENT), (300, 400))
    need = fast.fast_peak_bytes((1536, 2048), (384, 512))
    assert need == max(2048 * 384 * 512, 6 * 1536 * 2048 * 3 * 4)  # the network's pass, or the detail restoration
    with pytest.raises(fast.InputError, match=r"cat: a 1536x2048 px output needs about 384 MB in fast mode, above "
                       r"the memory budget of 100 MB \(option memory_budget\)"):
        fast.stylize_with_network(net, content, 2048, compute_losses=False, content_name="cat", memory_budget=100)
    res = fast.stylize_with_network(net, content, 2048, compute_losses=False, memory_budget=500)
    assert res.image.shape == (1536, 2048, 3)
