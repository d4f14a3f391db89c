"""Tiles with the style loss kept global: bounded memory at any output size, exact gradients.

The Gram of the whole image is the sum of its tiles' Grams, and the content loss is a sum over
positions, so one forward pass over the tiles gives the global losses and dL/dG.  A second pass
backpropagates each tile through ``sum(dL/dG * G_tile)`` (linear in the tile's Gram, dL/dG held
fixed), and the tiles' input gradients are added where they overlap.

Exactness: every tile is its core plus a halo at least the receptive field of the deepest layer
used, so each core activation is computed from real pixels exactly as in the whole image; core
edges lie on the pooling grid (multiples of 2^pools), so every activation position at every layer
lies in exactly one tile's core; the image's own edges stay tile edges, where SAME padding (and
odd-side pooling) behaves as untiled.  Tiled loss and gradient equal the untiled ones up to float
rounding.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nst_core import losses
from nst_core.errors import InputError
from nst_core.features import VGGFeatures
from nst_core.options import VGG_LAYERS

MB = 1 << 20
UNTILED_PASS_CAP = 1024 * MB  # a scale whose whole pass fits this (up to ~700x700 px) is not tiled
TILE_PASS_CAP = 512 * MB  # one tile pass: larger tiles save little halo work and cost RAM at 4096 px
RUNTIME_BYTES = 900 * MB  # TensorFlow, the weights, Python (idle engine ~0.8 GB): on top of the budget, not in it
CONSTANT_KERNELS_BYTES = 1200 * MB  # the optimised graphs' copies of constant kernels (RSS 2.5 GB against 1.3)
CHANNELS = {"block1": 64, "block2": 128, "block3": 256, "block4": 512, "block5": 512}
MIN_CORE = 64  # smallest tile core side planned: below it the halo dominates


def level(layer: str) -> int:
    """Pooling steps before ``layer`` (block1: 0 ... block5: 4)."""
    return int(layer.split("_")[0][-1]) - 1


def receptive_radius(deepest: str) -> int:
    """How far (input pixels) an activation of ``deepest`` reaches beyond its own 2^level block.

    A 3x3 conv at level k reaches one level-k position (2^k pixels) each side; a 2x2 stride-2
    pool adds nothing beyond the block it covers.
    """
    return sum(2 ** level(name) for name in VGG_LAYERS[: VGG_LAYERS.index(deepest) + 1])


def halo_and_align(deepest: str) -> tuple[int, int]:
    align = 2 ** level(deepest)
    return math.ceil(receptive_radius(deepest) / align) * align, align


def pass_bytes(hw: tuple[int, int], deepest: str, dtype_bytes: int = 4, backward: bool = True) -> int:
    """Estimated peak bytes of one VGG pass (forward, plus input gradient if ``backward``) over ``hw``.

    Kept for the backward pass: every layer's output and each pool's output; transient: a few
    tensors of the largest layer (relu mask, conv of the gradient, the pool gradient's windows).
    """
    h, w = hw
    kept = 3 * h * w * 4 * 3  # input, its float32 BGR copy, the input gradient
    largest = 0
    block = "block1"
    for name in VGG_LAYERS[: VGG_LAYERS.index(deepest) + 1]:
        if not name.startswith(block):
            kept += h * w * CHANNELS[block] * dtype_bytes  # the pool's output
            block = name.split("_")[0]
            h, w = (h + 1) // 2, (w + 1) // 2
        size = h * w * CHANNELS[block] * dtype_bytes
        kept += size if backward else 0
        largest = max(largest, size)
    return int(kept + (4 if backward else 2) * largest)


@dataclass(frozen=True)
class Tile:
    """A core (rows y0:y1, cols x0:x1) and the outer window (with halo) that is computed."""

    y0: int
    y1: int
    x0: int
    x1: int
    oy0: int
    oy1: int
    ox0: int
    ox1: int

    def box(self, k: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the core at level ``k``, relative to the outer window's level-k grid."""
        s = 2 ** k
        return ((self.y0 - self.oy0) // s, (self.x0 - self.ox0) // s,
                -(-self.y1 // s) - self.y0 // s, -(-self.x1 // s) - self.x0 // s)

    def core_slice(self, k: int) -> tuple[slice, slice]:
        """The core's rows and columns in a whole-image level-``k`` array."""
        s = 2 ** k
        return slice(self.y0 // s, -(-self.y1 // s)), slice(self.x0 // s, -(-self.x1 // s))


def _cuts(n: int, parts: int, align: int) -> list[int]:
    cuts = sorted({0, n, *(round(i * n / parts / align) * align for i in range(1, parts))})
    return [c for c in cuts if 0 <= c <= n]


def plan(hw: tuple[int, int], deepest: str, budget: int, dtype_bytes: int = 4, backward: bool = True,
         name: str = "image", min_core: int = MIN_CORE, core_side: int | None = None) -> list[Tile]:
    """Tiles whose passes each fit ``budget`` bytes; one tile (the whole image) when it fits untiled.

    ``core_side`` fixes the cores' side instead (tests).
    """
    h, w = hw
    whole = Tile(0, h, 0, w, 0, h, 0, w)
    if core_side is None and pass_bytes(hw, deepest, dtype_bytes, backward) <= budget:
        return [whole]
    halo, align = halo_and_align(deepest)

    def cost(core: int) -> int:
        return pass_bytes((min(h, core + 2 * halo), min(w, core + 2 * halo)), deepest, dtype_bytes, backward)

    core = core_side or max(h, w)
    while core_side is None and core > min_core and cost(core) > budget:
        core = int(core * 0.9)
    if core_side is None and cost(core) > budget:
        raise InputError(f"{name}: a tile of a {h}x{w} image (halo {halo} px) needs {cost(core) // MB} MB, "
                         f"above the memory budget's {budget // MB} MB for one pass")
    core = max(align, core // align * align)
    ys, xs = _cuts(h, math.ceil(h / core), align), _cuts(w, math.ceil(w / core), align)
    tiles = []
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            tiles.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(h, y1 + halo),
                              max(0, x0 - halo), min(w, x1 + halo)))
    return tiles


def available_bytes() -> int:
    """Memory this machine can give: the first GPU's when there is one, else MemAvailable."""
    if tf.config.list_physical_devices("GPU"):
        try:
            import subprocess

            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            return int(out.split()[0]) * MB
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def budget_bytes(memory_budget_mb: int) -> int:
    """The option in bytes; 0 means 40 % of what is available (a worker may run two engines)."""
    return memory_budget_mb * MB if memory_budget_mb > 0 else int(0.4 * available_bytes())


LBFGS_HISTORY = 10  # curvature pairs of a scale up to the look size
LBFGS_HISTORY_LARGE = 3  # of a scale above it, float32: each pair is two image-sized arrays (400 MB at 4096x4096)
IMAGE_COPIES = 8  # float32 image-sized arrays besides the history at a step: x, start, best, trial, gradients, s, y


def lbfgs_memory(hw: tuple[int, int], look_size: int) -> tuple[int, type]:
    """(curvature pairs, dtype) of one scale's L-BFGS: set by the scale's size, never by the budget or
    tiling, so the same options give the same picture on any machine.  float32 at every size: float64 cost
    32 ms a step at 512 px for the same distances (benchmarks/RESULTS.md, Quality per second: the 512 px step)."""
    return (LBFGS_HISTORY_LARGE if max(hw) > look_size else LBFGS_HISTORY), np.float32


def state_bytes(hw: tuple[int, int], content_layer: str, look_size: int = 512) -> int:
    """Image-sized memory of one scale: image copies, L-BFGS history and content features (not the runtime)."""
    px = hw[0] * hw[1]
    s = 2 ** level(content_layer)
    content = -(-hw[0] // s) * -(-hw[1] // s) * CHANNELS[content_layer.split("_")[0]] * 4
    pairs, dtype = lbfgs_memory(hw, look_size)
    history = pairs * 2 * np.dtype(dtype).itemsize
    return px * 3 * (IMAGE_COPIES * 4 + history) + content


def peak_bytes(hw: tuple[int, int], tiles: list[Tile], deepest: str, content_layer: str, dtype_bytes: int = 4,
               backward: bool = True, look_size: int = 512, constant_kernels: bool = False) -> int:
    """The planner's estimate of the process's peak RSS at one scale: runtime, state and the largest tile pass."""
    passes = max(pass_bytes((t.oy1 - t.oy0, t.ox1 - t.ox0), deepest, dtype_bytes, backward) for t in tiles)
    runtime = RUNTIME_BYTES + (CONSTANT_KERNELS_BYTES if constant_kernels else 0)
    return runtime + state_bytes(hw, content_layer, look_size) + passes


def over_budget(name: str, hw: tuple[int, int], need: int, budget: int, mode: str = "") -> InputError:
    """The one-line refusal of an output that ``budget`` bytes cannot serve."""
    return InputError(f"{name}: a {hw[0]}x{hw[1]} px output needs about {need // MB} MB{mode}, above the memory "
                      f"budget of {budget // MB} MB (option memory_budget)")


def plan_scale(hw: tuple[int, int], deepest: str, content_layer: str, budget: int, dtype_bytes: int = 4,
               backward: bool = True, name: str = "content", look_size: int = 512) -> list[Tile]:
    """Tiles of one scale within ``budget`` bytes for the whole pair; InputError naming ``name`` if none fit.

    One tile (untiled, as below the budget) when the whole image's pass and state fit; else tiles whose
    pass fits what the state leaves, at most :data:`TILE_PASS_CAP`.
    """
    state = state_bytes(hw, content_layer, look_size)
    whole = pass_bytes(hw, deepest, dtype_bytes, backward)
    if whole <= min(UNTILED_PASS_CAP, budget - state):
        return plan(hw, deepest, whole, dtype_bytes, backward, name)
    floor = pass_bytes((MIN_CORE * 4, MIN_CORE * 4), deepest, dtype_bytes, backward)
    if budget - state < floor:
        raise over_budget(name, hw, state + floor, budget)
    return plan(hw, deepest, min(TILE_PASS_CAP, budget - state), dtype_bytes, backward, name)


class TiledVGG:
    """Tile passes of one VGG19 stack for one set of (style) layers and an optional content layer."""

    def __init__(self, feats: VGGFeatures, style_layers: tuple[str, ...], content_layer: str | None,
                 loss_scale: float = 1.0, masked: bool = False):
        self.feats = feats
        self.style_layers = style_layers
        self.content_layer = content_layer
        self.layers = tuple(sorted(set(style_layers) | ({content_layer} if content_layer else set()),
                                   key=VGG_LAYERS.index))
        self.loss_scale = loss_scale
        self.masked = masked  # the losses weight each position (a mask or alpha, nst_core.masks)
        n = len(style_layers)
        dt = feats.dtype
        box = tf.TensorSpec([len(self.layers), 4], tf.int32)
        tile = tf.TensorSpec([1, None, None, 3], tf.float32)
        ctile = tf.TensorSpec([1, None, None, None], dt)
        coefs = tuple(tf.TensorSpec([None, None], tf.float32) for _ in range(n))
        wts = [tuple(tf.TensorSpec([1, None, None, 1], tf.float32) for _ in self.layers)] if masked else []
        self.forward = tf.function(self._forward, input_signature=[tile, box, ctile, *wts], autograph=False)
        self.backward = tf.function(self._backward, input_signature=[tile, box, ctile, coefs,
                                                                     tf.TensorSpec([], tf.float32), *wts],
                                    autograph=False)
        self.features = tf.function(self._features, input_signature=[tile, box], autograph=False)

    def _cores(self, x, boxes):
        acts = self.feats(x, self.layers)
        return {name: tf.slice(acts[name], [0, boxes[i, 0], boxes[i, 1], 0], [1, boxes[i, 2], boxes[i, 3], -1])
                for i, name in enumerate(self.layers)}

    def _sums(self, x, boxes, c_tile, wts=None):
        cores = self._cores(x, boxes)
        w = dict(zip(self.layers, wts)) if wts is not None else {}
        sums = []
        for name in self.style_layers:
            f = tf.cast(cores[name], tf.float32)
            m = tf.reshape(f, [-1, tf.shape(f)[-1]])
            sums.append(losses.gram_sum(m, tf.reshape(w[name], [-1, 1]) if w else None))
        if self.content_layer:
            diff = tf.cast(cores[self.content_layer], tf.float32) - tf.cast(c_tile, tf.float32)
            sq = tf.square(diff) * w[self.content_layer] if w else tf.square(diff)
            csum = tf.reduce_sum(sq)
        else:
            csum = tf.constant(0.0)
        return sums, csum

    def _forward(self, x, boxes, c_tile, wts=None):
        sums, csum = self._sums(x, boxes, c_tile, wts)
        return tuple(sums), csum

    def _backward(self, x, boxes, c_tile, coefs, c_coef, wts=None):
        with tf.GradientTape() as tape:
            tape.watch(x)
            sums, csum = self._sums(x, boxes, c_tile, wts)
            lin = tf.add_n([tf.reduce_sum(c * s) for c, s in zip(coefs, sums)]) + c_coef * csum
            scaled = lin * self.loss_scale
        return tape.gradient(scaled, x) / self.loss_scale

    def _features(self, x, boxes):
        return self._cores(x, boxes)[self.content_layer]

    # --- whole-image operations ----------------------------------------------------------------
    def _boxes(self, t: Tile) -> tf.Tensor:
        return tf.constant([t.box(level(name)) for name in self.layers], tf.int32)

    def _tile_input(self, img: np.ndarray, t: Tile) -> tf.Tensor:
        return tf.constant(np.ascontiguousarray(img[t.oy0:t.oy1, t.ox0:t.ox1])[None])

    def _c_tile(self, c_target: np.ndarray | None, t: Tile) -> tf.Tensor:
        if c_target is None:
            return tf.zeros([1, 1, 1, 1], self.feats.dtype)
        rows, cols = t.core_slice(level(self.content_layer))
        return tf.constant(np.ascontiguousarray(c_target[rows, cols])[None], self.feats.dtype)

    def positions(self, hw: tuple[int, int], layer: str) -> int:
        s = 2 ** level(layer)
        return -(-hw[0] // s) * -(-hw[1] // s)

    def _denominator(self, hw: tuple[int, int], layer: str, weights: list[np.ndarray] | None) -> float:
        """What a Gram's sum is divided by: the positions, or the sum of their weights when masked."""
        if weights is None:
            return float(self.positions(hw, layer))
        return float(np.sum(weights[level(layer)], dtype=np.float64)) + losses.EPS

    def _tile_weights(self, weights: list[np.ndarray] | None, t: Tile) -> list[tuple[tf.Tensor, ...]]:
        """The masked functions' last argument: each layer's weights over the tile's core; nothing unmasked."""
        if not self.masked:
            return []
        assert weights is not None, "a masked TiledVGG needs the per-level weights"
        out = []
        for name in self.layers:
            rows, cols = t.core_slice(level(name))
            out.append(tf.constant(np.ascontiguousarray(weights[level(name)][rows, cols])[None, ..., None]))
        return [tuple(out)]

    def grams(self, img: np.ndarray, tiles: list[Tile],
              weights: list[np.ndarray] | None = None) -> tuple[list[tf.Tensor], float]:
        """Global Grams of ``img``'s style layers (masked: over the ``weights`` per pooling level, see
        :func:`nst_core.masks.layer_weights`), and the content sum when a target is set (see ``loss``)."""
        return self._stats(img, tiles, None, weights)

    def _stats(self, img: np.ndarray, tiles: list[Tile], c_target: np.ndarray | None,
               weights: list[np.ndarray] | None = None):
        hw = img.shape[:2]
        sums: list[tf.Tensor] | None = None
        csum = 0.0
        for t in tiles:
            s, c = self.forward(self._tile_input(img, t), self._boxes(t), self._c_tile(c_target, t),
                                *self._tile_weights(weights, t))
            sums = list(s) if sums is None else [a + b for a, b in zip(sums, s)]
            csum += float(c)
        assert sums is not None
        grams = [s / self._denominator(hw, name, weights) for s, name in zip(sums, self.style_layers)]
        return grams, csum

    def content_features(self, img: np.ndarray, tiles: list[Tile]) -> np.ndarray:
        """The whole image's activations at the content layer, assembled from the tiles' cores."""
        k = level(self.content_layer)
        s = 2 ** k
        hw = img.shape[:2]
        out = np.empty((-(-hw[0] // s), -(-hw[1] // s), CHANNELS[self.content_layer.split("_")[0]]),
                       self.feats.dtype.as_numpy_dtype)
        for t in tiles:
            rows, cols = t.core_slice(k)
            out[rows, cols] = self.features(self._tile_input(img, t), self._boxes(t)).numpy()[0]
        return out

    def loss(self, x: np.ndarray, tiles: list[Tile], c_target: np.ndarray, s_targets, layer_weights: np.ndarray,
             weights: np.ndarray, grad: bool = True, region: list[np.ndarray] | None = None):
        """(total, content, style, tv, grad or None) of the whole image, as the untiled loss computes them;
        ``region``: per pooling level, the weights of a masked TiledVGG."""
        grams, csum = self._stats(x, tiles, c_target, region)
        energy = np.square(c_target, dtype=np.float32)
        if region is not None:
            energy = energy * region[level(self.content_layer)][..., None]
        c_energy = float(np.sum(energy, dtype=np.float64)) + losses.EPS
        del energy
        c = csum / c_energy
        g_vars = [tf.convert_to_tensor(g) for g in grams]
        with tf.GradientTape() as tape:
            tape.watch(g_vars)
            s = tf.add_n([float(layer_weights[i]) * losses.style_layer_loss(g, s_targets[i])
                          for i, g in enumerate(g_vars)])
        d_grams = tape.gradient(s, g_vars)
        tv, g = tv_and_grad(x, float(weights[2]))
        total = float(weights[0]) * c + float(weights[1]) * float(s) + float(weights[2]) * tv
        if not grad:
            return total, c, float(s), tv, None
        coefs = tuple(float(weights[1]) * d / self._denominator(x.shape[:2], name, region)
                      for d, name in zip(d_grams, self.style_layers))
        c_coef = tf.constant(float(weights[0]) / c_energy, tf.float32)
        for t in tiles:
            gt = self.backward(self._tile_input(x, t), self._boxes(t), self._c_tile(c_target, t), coefs, c_coef,
                               *self._tile_weights(region, t))
            g[t.oy0:t.oy1, t.ox0:t.ox1] += gt.numpy()[0]
        return total, c, float(s), tv, g


TV_ROWS = 256  # rows per chunk of the TV term: its temporaries stay a few MB at 4096 px, not image-sized


def tv_and_grad(x: np.ndarray, weight: float) -> tuple[float, np.ndarray]:
    """:func:`losses.tv_loss` of an HxWx3 image and ``weight`` times its gradient, in row chunks.

    TV is a function of pixels only, so it needs no halo; TensorFlow on the whole image held about six
    image-sized temporaries at once.
    """
    h, w = x.shape[:2]
    n_dy, n_dx = max(h - 1, 0) * w * 3, h * max(w - 1, 0) * 3
    k_dy = 2.0 / (255.0 ** 2 * n_dy) if n_dy else 0.0
    k_dx = 2.0 / (255.0 ** 2 * n_dx) if n_dx else 0.0
    g = np.zeros_like(x, dtype=np.float32)
    sum_dy = sum_dx = 0.0
    for r0 in range(0, h, TV_ROWS):
        r1 = min(h, r0 + TV_ROWS)
        dx = np.diff(x[r0:r1], axis=1)  # pairs (c, c+1) of these rows
        sum_dx += float(np.einsum("ijk,ijk->", dx, dx, dtype=np.float64))
        dx *= weight * k_dx
        g[r0:r1, 1:] += dx
        g[r0:r1, :-1] -= dx
        dy = np.diff(x[r0:min(h, r1 + 1)], axis=0)  # pairs (r, r+1) starting in these rows
        sum_dy += float(np.einsum("ijk,ijk->", dy, dy, dtype=np.float64))
        dy *= weight * k_dy
        g[r0 + 1:r0 + 1 + dy.shape[0]] += dy
        g[r0:r0 + dy.shape[0]] -= dy
    tv = (sum_dy / n_dy if n_dy else 0.0) / 255.0 ** 2 + (sum_dx / n_dx if n_dx else 0.0) / 255.0 ** 2
    return tv, g
