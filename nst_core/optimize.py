"""Optimisers over the image's pixels: L-BFGS and Adam, one objective evaluation per step.

The objective is ``f(x) -> (total, parts, grad)`` on a float32 HxWx3 array in 0..255.  Both
loops count a step as one evaluation (forward + backward through VGG19, the only costly part),
keep pixels inside 0..255, stop with :class:`NumericalError` on NaN/Inf, and return the best
point they evaluated, so the reported losses are exactly those of the returned image.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from nst_core.errors import NumericalError

Objective = Callable[[np.ndarray], tuple[float, dict, np.ndarray]]
OnStep = Callable[[dict, np.ndarray], None]


DOT_CHUNK = 1 << 16  # float32 vectors are summed in chunks: a float32 running sum over 50M terms drifts


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS: OpenBLAS's threads fight TensorFlow's for the cores between
    steps (measured: a 128px L-BFGS step took 0.115 s with ``np.dot``, 0.074 s without)."""
    if a.dtype == np.float64:
        return float(np.einsum("i,i->", a, b))
    return float(sum(float(np.einsum("i,i->", a[i:i + DOT_CHUNK], b[i:i + DOT_CHUNK]))
                     for i in range(0, a.size, DOT_CHUNK)))


def _check(total: float, step: int) -> None:
    if not np.isfinite(total):
        raise NumericalError(f"loss became {total} at step {step}")


class _Best:
    def __init__(self) -> None:
        self.loss = np.inf
        self.x: np.ndarray | None = None
        self.parts: dict = {}

    def offer(self, loss: float, x: np.ndarray, parts: dict) -> None:
        if loss <= self.loss:
            self.loss, self.x, self.parts = loss, x.copy(), parts


def adam(x: np.ndarray, objective: Objective, steps: int, lr: float, on_step: OnStep,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> tuple[np.ndarray, dict]:
    x = x.astype(np.float32).copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = betas
    best = _Best()
    for i in range(steps):
        total, parts, g = objective(x)
        _check(total, i)
        best.offer(total, x, parts)
        on_step(parts, x)
        if i == steps - 1:
            break
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** (i + 1))
        vhat = v / (1 - b2 ** (i + 1))
        x = np.clip(x - lr * mhat / (np.sqrt(vhat) + eps), 0.0, 255.0).astype(np.float32)
    return (best.x if best.x is not None else x), best.parts


Curvature = list[tuple[np.ndarray, np.ndarray]]
"""L-BFGS memory as image-shaped (s, y) pairs: step taken and gradient change, oldest first."""


def lbfgs(x: np.ndarray, objective: Objective, steps: int, on_step: OnStep, history: int = 10,
          first_step_pixels: float = 2.0, max_step_pixels: float = 32.0,
          curvature: Curvature | None = None, dtype: type = np.float64) -> tuple[np.ndarray, dict]:
    """Limited-memory BFGS without line search (like torch's ``LBFGS(max_iter=1)``).

    The first step moves the largest-gradient pixel by ``first_step_pixels``; later steps use
    the two-loop recursion with the usual s.y / y.y initial scaling.  When the loss rises (bf16
    gradients are noisy) the curvature history is dropped and rebuilt.

    No pixel moves more than ``max_step_pixels`` in one step (the whole step is scaled down):
    right after a restart the curvature estimate from one tiny step is poor, and without the cap
    the second step of a new scale threw the image far off (measured at 256 px: loss 3.2 -> 116,
    then 5 steps to recover).  ``curvature``, when given, seeds the memory (e.g. the previous
    scale's pairs, resized) and receives the final memory, so a coarse-to-fine run need not
    relearn the curvature at every scale.  ``dtype`` is that of the memory and the search direction:
    float32 halves the history's memory for large (tiled) images.
    """
    x = x.astype(np.float32, copy=False)  # never written in place: no copy (one image less at 4096 px)
    best = _Best()
    if steps <= 0:
        return x, {}
    total, parts, g = objective(x)
    _check(total, 0)
    best.offer(total, x, parts)
    on_step(parts, x)
    mem: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=history)
    for s0, y0 in curvature or []:
        s_vec, y_vec = s0.ravel().astype(dtype, copy=False), y0.ravel().astype(dtype, copy=False)
        sy = _dot(s_vec, y_vec)
        if s0.shape == x.shape and sy > 0:
            mem.append((s_vec, y_vec, 1.0 / sy))
    if curvature is not None:
        curvature.clear()  # mem holds the seeds now; the caller's list kept evicted pairs alive (2 GB at 4096 px)
    for i in range(1, steps):
        flat_g = g.ravel().astype(dtype, copy=False)
        if mem:
            q = flat_g.copy()
            alphas = []
            for s, y, rho in reversed(mem):
                a = rho * _dot(s, q)
                alphas.append(a)
                q -= a * y
            s, y, rho = mem[-1]
            q *= _dot(s, y) / _dot(y, y)
            for (s, y, rho), a in zip(mem, reversed(alphas)):
                b = rho * _dot(y, q)
                q += (a - b) * s
            d = np.negative(q, out=q)
            del q
        else:
            d = -flat_g * (first_step_pixels / (np.abs(flat_g).max() + 1e-30))
        biggest = float(np.abs(d).max())
        if biggest > max_step_pixels:
            d *= max_step_pixels / biggest
        x_new = d.reshape(x.shape).astype(np.float32, copy=False) + x
        np.clip(x_new, 0.0, 255.0, out=x_new)
        del d
        total_new, parts_new, g_new = objective(x_new)
        _check(total_new, i)
        s_vec = (x_new - x).ravel().astype(dtype, copy=False)
        y_vec = (g_new - g).ravel().astype(dtype, copy=False)
        sy = float(_dot(s_vec, y_vec))
        if total_new > total:
            mem.clear()
        elif sy > 1e-10 * float(_dot(y_vec, y_vec)) and sy > 0:
            mem.append((s_vec, y_vec, 1.0 / sy))
        x, g, total = x_new, g_new, total_new
        best.offer(total, x, parts_new)
        on_step(parts_new, x)
    if curvature is not None:
        f32 = np.float32
        curvature[:] = [(s.reshape(x.shape).astype(f32, copy=False), y.reshape(x.shape).astype(f32, copy=False))
                        for s, y, _ in mem]
    return best.x, best.parts
