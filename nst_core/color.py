"""Keeping the content's colours (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer")."""

from __future__ import annotations

import numpy as np

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float64) @ _RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return np.clip(yiq.astype(np.float64) @ _YIQ_TO_RGB.T, 0, 255).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance as a grey RGB image (what the network sees in luminance-only transfer)."""
    y = rgb_to_yiq(rgb)[..., :1]
    return np.repeat(y, 3, axis=2)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Grey style luminance with the content luminance's mean and standard deviation."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    y = (ys - ys.mean()) * (yc.std() / (ys.std() + 1e-6)) + yc.mean()
    return np.repeat(np.clip(y, 0, 255)[..., None], 3, axis=2).astype(np.float32)


def recombine(stylized_grey: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Stylised luminance with the content's chrominance."""
    yiq = rgb_to_yiq(content)
    yiq[..., 0] = stylized_grey.mean(axis=2)
    return yiq_to_rgb(yiq)


def restore_colors(image: np.ndarray, content: np.ndarray, preserve_colors: str) -> np.ndarray:
    """An image of the optimisation as the user sees it: with ``luminance`` the optimised (grey) luminance
    gets the content's chrominance back (:func:`recombine`, the content resized to the image), as the
    final image does; otherwise the image is already in colour."""
    if preserve_colors != "luminance":
        return image
    from nst_core.images import resize  # images imports PIL; colour maths alone needs only numpy

    return recombine(image, resize(content, image.shape[:2]))


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 1e-5)
    p = -0.5 if inverse else 0.5
    return (vecs * vals**p) @ vecs.T


def match_colors(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source`` recoloured to the mean and covariance of ``reference``'s colours."""
    s = source.reshape(-1, 3).astype(np.float64)
    r = reference.reshape(-1, 3).astype(np.float64)
    mu_s, mu_r = s.mean(0), r.mean(0)
    cov_s = np.cov(s, rowvar=False) + np.eye(3) * 1e-3
    cov_r = np.cov(r, rowvar=False) + np.eye(3) * 1e-3
    transform = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    out = (s - mu_s) @ transform.T + mu_r
    return np.clip(out, 0, 255).reshape(source.shape).astype(np.float32)
