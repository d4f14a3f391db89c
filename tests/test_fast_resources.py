"""Fast mode holds no process state of its own: seeded weights without global reseeding, a traced forward
that lives and dies with its network, and the Stylizer's VGG19 for training and scoring (one per process)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import tensorflow as tf
from images_factory import CONTENT, ROOT, STYLE

from nst_core import fast, images
from nst_core import stylizer as stylizer_mod
from nst_core import weights as weights_mod
from nst_core.options import StyleOptions

TINY = fast.Architecture(width=8, blocks=1)


def test_same_seed_same_weights_and_the_global_random_state_untouched():
    random.seed(123)
    np.random.seed(456)
    py_state, np_state, tf_seed = random.getstate(), np.random.get_state(), tf.compat.v1.get_seed(None)[0]
    a = fast.build_network(TINY, seed=7).get_weights()
    b = fast.build_network(TINY, seed=7).get_weights()
    c = fast.build_network(TINY, seed=8).get_weights()
    content = images.resize(images.load_image(CONTENT), (32, 32))
    fast.train_style_network(STYLE, [content], StyleOptions(size=32, seed=7),
                             fast.TrainConfig(steps=2, batch_size=1, crop=32), arch=TINY)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert random.getstate() == py_state and tf.compat.v1.get_seed(None)[0] == tf_seed
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


FREED = """
import gc, weakref
import numpy as np
from nst_core import fast
model = fast.build_network(fast.Architecture(width=8, blocks=1), seed=1)
out = fast.apply_network(model, np.full((20, 28, 3), 100.0, np.float32))
assert out.shape == (20, 28, 3) and fast.forward(model) is fast.forward(model)  # traced once, kept on it
gone = weakref.ref(model)
del model
gc.collect()
print("freed" if gone() is None else "kept")
"""


def test_the_traced_forward_is_freed_with_its_network():
    """In a fresh interpreter: other tests' TensorFlow state must not decide it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", FREED], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "freed"


def test_optimize_training_and_fast_scoring_share_one_vgg19(stylizer, tmp_path, monkeypatch):
    """What one worker does with its Stylizer: optimize a pair, train a network, score a fast pass."""
    built: list[str] = []
    loads: list[str] = []

    class CountedFeatures(stylizer_mod.VGGFeatures):
        def __init__(self, *a, **k):
            built.append(a[1])
            super().__init__(*a, **k)

    real_load = weights_mod.load_weights
    monkeypatch.setattr(stylizer_mod, "VGGFeatures", CountedFeatures)
    monkeypatch.setattr(stylizer_mod, "load_weights", lambda src: loads.append(src) or real_load(src))
    opts = StyleOptions(size=32, steps=2, coarse_steps=2, min_size=16, num_scales=1, refine="full",
                        precision="float32")
    st = stylizer_mod.Stylizer(opts)
    st.stylize(CONTENT, STYLE, opts)
    content = images.resize(images.load_image(CONTENT), (32, 32))
    model, _ = fast.train_style_network(STYLE, [content], opts, fast.TrainConfig(steps=2, batch_size=1, crop=32),
                                        arch=TINY, stylizer=st)
    network = fast.load_style_network(fast.save_style_network(model, tmp_path / "n.keras"))
    res = fast.stylize_with_network(network, CONTENT, 32, stylizer=st)
    assert all(np.isfinite(v) for v in res.losses.values())
    assert built == ["float32"] and len(loads) == 1  # one VGG19 for all three
