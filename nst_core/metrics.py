"""The yardstick: tool-independent quality distances of a stylised image, in float32.

- content = sum((F(out) - F(content))^2) / sum(F(content)^2) on block4_conv2
- style   = mean over block1_conv1..block5_conv1 of ||G(out) - G(style)||_F / ||G(style)||_F,
            G = F^T F / (h*w)

The content image is resized to the output's size and the style image to the output's pixel
count (pastiche's convention), so any tool's output can be scored the same way.
"""

from __future__ import annotations

import numpy as np

from nst_core import images, losses
from nst_core.features import VGGFeatures
from nst_core.options import DEFAULT_STYLE_LAYERS
from nst_core.tfimport import tf

CONTENT_LAYER = "block4_conv2"


def distances(output: images.ImageLike, content: images.ImageLike, style: images.ImageLike,
              features: VGGFeatures) -> dict[str, float]:
    if features.precision != "float32":
        raise ValueError("the yardstick needs float32 features")
    out = images.load_image(output)
    hw = out.shape[:2]
    c = images.resize(images.load_image(content), hw)
    s_arr = images.load_image(style)
    s = images.resize(s_arr, losses.style_hw(s_arr.shape[:2], hw))
    layers = (*DEFAULT_STYLE_LAYERS, CONTENT_LAYER)
    fo = features(tf.constant(out[None]), layers)
    fc = features(tf.constant(c[None]), (CONTENT_LAYER,))
    fs = features(tf.constant(s[None]), DEFAULT_STYLE_LAYERS)
    content_d = float(losses.content_loss(fo[CONTENT_LAYER], fc[CONTENT_LAYER]))
    style_d = []
    for name in DEFAULT_STYLE_LAYERS:
        go, gs = losses.gram(fo[name]), losses.gram(fs[name])
        style_d.append(float(tf.norm(go - gs) / tf.norm(gs)))
    return {"content": content_d, "style": float(np.mean(style_d))}
