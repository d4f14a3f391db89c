"""Where a pair is stylized: the content's alpha and a greyscale mask, as loss weights and as the composite.

A :class:`Region` holds, at the content's size, the weight of every pixel in the losses (alpha times
mask: 0 takes no part, 1 full part), the alpha to give back exactly, and the mask that blends the
stylized image with the content (white: stylized, black: the content, grey: a blend).  The losses
use the weight downsampled to each VGG layer's grid (Gatys et al. 2017, spatial control); pixels of
weight 0 are held at the content while the image is optimised, so the region's edge is stylized
against the neighbourhood the output really has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from nst_core import images
from nst_core.errors import InputError

BLACK = 0.5 / 255  # a mask whose brightest pixel is below this is all black


@dataclass
class Region:
    """Loss weight, alpha and blend mask of one content image (HxW float32 in 0..1, at its size)."""

    weight: np.ndarray
    alpha: np.ndarray | None = None  # the content's own alpha, given back exactly
    alpha_u8: np.ndarray | None = None  # ... as decoded (HxW uint8)
    mask: np.ndarray | None = None
    feather: float = 0.0  # px at the output size: how far inside its edge the mask's blend softens
    mask_as_alpha: bool = False  # the mask becomes the output's alpha instead of blending with the content
    _at: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def weight_at(self, hw: tuple[int, int]) -> np.ndarray:
        """The loss weight at ``hw`` (resized without ringing, so zeros stay exactly zero away from an edge)."""
        hw = tuple(hw)
        if hw not in self._at:
            self._at[hw] = resize_weight(self.weight, hw)
        return self._at[hw]

    def fraction(self) -> float:
        return float(self.weight.mean())


def resize_weight(w: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An HxW 0..1 field at ``hw`` with a triangle filter (no Lanczos ringing below 0 or above 1)."""
    if w.shape == tuple(hw):
        return w.astype(np.float32)
    img = Image.fromarray(np.ascontiguousarray(w, np.float32), mode="F").resize((hw[1], hw[0]), Image.BILINEAR)
    return np.clip(np.asarray(img, np.float32), 0.0, 1.0)


def load_mask(src: images.ImageLike, name: str, hw: tuple[int, int]) -> np.ndarray:
    """A greyscale mask (white: stylize, black: keep the content) as HxW float32 0..1 at ``hw``.

    Colour masks count by their luminance; a mask's own transparency counts as black.  InputError
    naming the mask if it is not an image or is all black.
    """
    img = src if isinstance(src, Image.Image) else None
    if isinstance(src, np.ndarray):
        arr = np.asarray(src, np.float32)
        if arr.ndim == 3:
            arr = arr[..., :3].mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
        if arr.ndim != 2 or 0 in arr.shape:
            raise InputError(f"{name}: expected an HxW greyscale array, got shape {np.shape(src)}")
        grey = arr / 255.0 if arr.max(initial=0) > 1.0 else arr
    else:
        if img is None:
            if not isinstance(src, (str, bytes, bytearray)) and not hasattr(src, "__fspath__"):
                raise InputError(f"{name}: cannot read a mask from {type(src).__name__}")
            img = images.open_image(bytes(src) if isinstance(src, bytearray) else src, name)
        img = images.oriented(img, name)
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        if img.mode.startswith("I") or img.mode == "F":
            grey = images.load_image(img, name)[..., 0] / 255.0
        else:
            grey = np.asarray(img.convert("L"), np.float32) / 255.0
        if has_alpha:
            grey = grey * (np.asarray(img.convert("RGBA"), np.float32)[..., 3] / 255.0)
    if not np.all(np.isfinite(grey)):
        raise InputError(f"{name}: mask holds NaN or Inf")
    grey = np.clip(grey, 0.0, 1.0).astype(np.float32)
    if grey.max(initial=0) < BLACK:
        raise InputError(f"{name}: the mask is all black, so nothing would be stylized")
    out = resize_weight(grey, hw)
    if out.max(initial=0) < BLACK:
        raise InputError(f"{name}: the mask's white part vanishes at the content's size {hw[1]}x{hw[0]}")
    return out


def build_region(alpha_u8: np.ndarray | None, mask: np.ndarray | None, content_name: str,
                 feather: float, mask_as_alpha: bool = False) -> Region | None:
    """The Region of a content with this alpha (uint8, or None) and mask (0..1 at its size, or None)."""
    if alpha_u8 is not None and (alpha_u8 == 255).all():
        alpha_u8 = None  # an opaque alpha weighs nothing: the caller gives it back (see opaque_alpha)
    if alpha_u8 is None and mask is None:
        return None
    alpha = None if alpha_u8 is None else alpha_u8.astype(np.float32) / 255.0
    weight = np.ones((alpha if alpha is not None else mask).shape, np.float32)
    if alpha is not None:
        if not alpha.any():
            raise InputError(f"{content_name}: fully transparent, so nothing would be stylized")
        weight = weight * alpha
    if mask is not None:
        weight = weight * mask
        if weight.max() < BLACK:
            raise InputError(f"{content_name}: the mask's white part covers only transparent pixels")
    return Region(weight=weight, alpha=alpha, alpha_u8=alpha_u8, mask=mask, feather=feather,
                  mask_as_alpha=mask_as_alpha and mask is not None)


def with_opaque_alpha(image: np.ndarray, alpha_u8: np.ndarray | None) -> np.ndarray:
    """``image`` with an alpha channel of 255 when the content had one that is fully opaque: RGBA in, RGBA out."""
    if alpha_u8 is None or image.shape[-1] == 4 or not (alpha_u8 == 255).all():
        return image
    return np.dstack([image, np.full(image.shape[:2], 255, image.dtype)])


def layer_weights(w: np.ndarray, levels: int) -> list[np.ndarray]:
    """``w`` on the grid of each pooling level 0..levels: the mean over the 2^k x 2^k pixels of a position
    (an odd side's last position, like VGG's SAME pooling, covers the pixels there are)."""
    out = [w.astype(np.float32)]
    for _ in range(levels):
        a = out[-1]
        h, wd = a.shape
        a = np.pad(a, ((0, h % 2), (0, wd % 2)), mode="edge")
        out.append(a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3)))
    return out


def bleed(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` with every fully transparent pixel given the colours of the opaque part nearby (push-pull).

    What lies under a cut-out's transparent pixels is often black or the removed background; left
    there, VGG sees a contour along the edge and the style paints a dark or light rim inside it.
    """
    if (alpha > 0).all():
        return rgb.astype(np.float32)
    w = alpha.astype(np.float64)
    filled = _push_pull(rgb.astype(np.float64) * w[..., None], w)
    return np.where((alpha > 0)[..., None], rgb, np.clip(filled, 0, 255)).astype(np.float32)


def _push_pull(weighted: np.ndarray, w: np.ndarray) -> np.ndarray:
    h, wd = w.shape
    known = w > 0
    colour = weighted / np.maximum(w, 1e-12)[..., None]
    if known.all() or max(h, wd) == 1:
        return colour
    pw = np.pad(w, ((0, h % 2), (0, wd % 2)))
    pc = np.pad(weighted, ((0, h % 2), (0, wd % 2), (0, 0)))
    w2 = pw.reshape(pw.shape[0] // 2, 2, pw.shape[1] // 2, 2).sum(axis=(1, 3))
    c2 = pc.reshape(pc.shape[0] // 2, 2, pc.shape[1] // 2, 2, 3).sum(axis=(1, 3))
    coarse = _push_pull(c2, w2)
    up = images.resize_field(coarse.astype(np.float32), (h, wd)) if min(coarse.shape[:2]) > 1 else \
        np.broadcast_to(coarse.mean(axis=(0, 1)), (h, wd, 3))
    return np.where(known[..., None], colour, up)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an HxW field (edges extended), kernel cut at 3 sigma."""
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
    k /= k.sum()
    out = a.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(float(k[i]) * np.take(p, np.arange(i, i + n), axis=axis) for i in range(2 * r + 1))
    return out.astype(np.float32)


def feathered(mask: np.ndarray, sigma: float) -> np.ndarray:
    """The blend mask with its edges softened inward only: where the mask is 0 it stays 0 (unchanged pixels)."""
    if sigma <= 0:
        return mask.astype(np.float32)
    return np.minimum(mask, blur(mask, sigma)).astype(np.float32)


def composite(x: np.ndarray, content: np.ndarray, region: Region, hw: tuple[int, int]) -> np.ndarray:
    """The output at ``hw``: HxWx3 float RGB, or HxWx4 with the content's alpha in 0..255.

    RGB is the stylized ``x`` blended with ``content`` (the decoded colours, not the bled ones) by the
    feathered mask; with an alpha, fully transparent pixels keep the content's hidden colours.  With
    ``mask_as_alpha`` the RGB is ``x`` and the mask (times any alpha of the content) is the alpha.
    """
    c = images.resize(content, hw)
    rgb = x
    if region.mask_as_alpha:
        alpha = resize_weight(region.mask, hw) * 255.0
        if region.alpha is not None:
            alpha = alpha * resize_weight(region.alpha, hw)
        return np.dstack([x, np.rint(alpha)]).astype(np.float32)
    if region.mask is not None:
        m = feathered(resize_weight(region.mask, hw), region.feather)
        rgb = c + m[..., None] * (x - c)
    if region.alpha is None:
        return rgb.astype(np.float32)
    alpha = region.alpha_u8.astype(np.float32) if region.alpha.shape == tuple(hw) else \
        resize_weight(region.alpha, hw) * 255.0
    rgb = np.where((alpha == 0)[..., None], c, rgb)
    return np.dstack([rgb, alpha]).astype(np.float32)


def onto_background(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """An HxWx4 image (0..255) composited onto a solid colour: HxWx3 float for formats without alpha."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = np.array(background, np.float32)
    return (rgba[..., :3].astype(np.float32) * a + bg * (1.0 - a)).astype(np.float32)
