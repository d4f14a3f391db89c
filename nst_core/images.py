"""Safe image decoding, and encoding to PNG, JPEG or WebP with provenance.

Decoding accepts a path, bytes, a PIL image or an array and always returns float32 RGB in
0..255.  It refuses decompression bombs, truncated and zero-size files with an
:class:`InputError` that names the input; it applies EXIF orientation, flattens alpha onto
white, converts greyscale, CMYK, palette and 16-bit images, and takes the first frame of an
animation.  :func:`load_rgba` decodes the same way but hands back the alpha channel instead.
Encoding keeps alpha in PNG and WebP; provenance goes in PNG text chunks, or in an XMP packet (one
``nst:text`` JSON object) for JPEG and WebP.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from nst_core.errors import InputError

MAX_PIXELS = 100_000_000  # decoded pixels allowed per image (PIL's own bomb limit is ~179M)
ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray


def describe(src: ImageLike) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, bytes):
        return f"<{len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL image {src.size[0]}x{src.size[1]}>"
    return f"<array {getattr(src, 'shape', '?')}>"


def open_image(src: ImageLike, name: str) -> Image.Image:
    """The decoded PIL image of a path or bytes, or InputError naming it (missing, empty, not an image, bomb)."""
    return _open(src, name)


def _open(src: ImageLike, name: str) -> Image.Image:
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise InputError(f"{name}: file not found")
        if path.is_dir():
            raise InputError(f"{name}: is a directory, not an image")
        data = path.read_bytes()
    else:
        data = src
    if len(data) == 0:
        raise InputError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise InputError(f"{name}: {w}x{h} pixels is more than the limit of {MAX_PIXELS:,} "
                                 "(decompression bomb?)")
            img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{name}: image too large, refused as a decompression bomb ({e})") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{name}: corrupt or truncated image ({e})") from None
    return img


def oriented(img: Image.Image, name: str) -> Image.Image:
    """``img`` turned by its EXIF orientation; InputError if it has no pixels."""
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block should not lose the image
        pass
    if img.size[0] == 0 or img.size[1] == 0:
        raise InputError(f"{name}: zero-size image")
    return img


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def _to_rgb(img: Image.Image, name: str) -> np.ndarray:
    img = oriented(img, name)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        grey = np.clip(arr / hi * 255.0, 0, 255).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.asarray(img, np.float32), 0, 255)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def load_image(src: ImageLike, name: str | None = None) -> np.ndarray:
    """Decode ``src`` to an HxWx3 float32 RGB array in 0..255, or raise InputError naming it."""
    name = name or describe(src)
    if isinstance(src, np.ndarray):
        arr = np.asarray(src)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InputError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {arr.shape}")
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        arr = arr[..., :3].astype(np.float32)
        if np.issubdtype(src.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: array holds NaN or Inf")
        return np.clip(arr, 0, 255)
    if isinstance(src, Image.Image):
        return _to_rgb(src, name)
    if not isinstance(src, (str, os.PathLike, bytes, bytearray)):
        raise InputError(f"{name}: cannot read an image from {type(src).__name__}")
    return _to_rgb(_open(bytes(src) if isinstance(src, bytearray) else src, name), name)


def load_rgba(src: ImageLike, name: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(HxWx3 float32 RGB 0..255, HxW uint8 alpha or None): the colours as stored (not flattened) and the
    alpha exactly as decoded (also when every pixel is opaque); None when the image has no alpha channel."""
    name = name or describe(src)
    if isinstance(src, np.ndarray):
        arr = np.asarray(src)
        if arr.ndim != 3 or arr.shape[2] != 4:
            return load_image(src, name), None
        a = arr[..., 3].astype(np.float64)
        if np.issubdtype(arr.dtype, np.floating) and arr[..., :3].max(initial=0) <= 1.0 and a.max(initial=0) <= 1.0:
            a = a * 255.0
        alpha = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return load_image(arr[..., :3], name), alpha
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, (str, os.PathLike, bytes, bytearray)):
        img = _open(bytes(src) if isinstance(src, bytearray) else src, name)
    else:
        raise InputError(f"{name}: cannot read an image from {type(src).__name__}")
    img = oriented(img, name)
    if not has_alpha(img):
        return _to_rgb(img, name), None
    rgba = np.asarray(img.convert("RGBA"))
    alpha = np.ascontiguousarray(rgba[..., 3])
    return rgba[..., :3].astype(np.float32), alpha


def fit_size(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """(h, w) scaled so the longest side is ``longest``, keeping the aspect ratio, each side >= 1."""
    h, w = shape
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize float RGB 0..255 with a high-quality filter (Lanczos down, bicubic up)."""
    if arr.shape[:2] == tuple(hw):
        return arr.astype(np.float32)
    return np.clip(resize_field(arr, hw), 0, 255)


def resize_field(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a signed HxWxC float field (no clipping): bicubic up, Lanczos down."""
    h, w = hw
    if arr.shape[:2] == (h, w):
        return arr.astype(np.float32)
    down = h * w < arr.shape[0] * arr.shape[1]
    chans = [Image.fromarray(np.ascontiguousarray(arr[..., c], np.float32), mode="F")
             .resize((w, h), Image.LANCZOS if down else Image.BICUBIC) for c in range(arr.shape[2])]
    return np.stack([np.asarray(c) for c in chans], axis=2).astype(np.float32)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


FORMATS = ("png", "jpeg", "webp")
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}  # format -> the extension it is written with
_BY_EXTENSION = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_XMP_NS = "https://github.com/nst/ns/1.0/"


def format_for_path(path: str | os.PathLike) -> str:
    """The format an output path's extension asks for; InputError naming the path if it is none of ours."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in _BY_EXTENSION:
        raise InputError(f"{os.fspath(path)}: unknown image extension {'.' + ext if ext else '(none)'}; "
                         f"use .png, .jpg, .jpeg or .webp")
    return _BY_EXTENSION[ext]


def _xmp(text: dict[str, str]) -> bytes:
    blob = json.dumps(text, sort_keys=True, ensure_ascii=False)
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:nst="{_XMP_NS}" nst:text={quoteattr(blob)}>'
            f'<nst:software>{escape(text.get("Software", ""))}</nst:software>'
            '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="r"?>').encode()


def encode(arr: np.ndarray, fmt: str = "png", quality: int = 90, text: dict[str, str] | None = None) -> bytes:
    """``fmt`` bytes of an HxWx3 (RGB) or HxWx4 (RGBA, alpha kept) array with ``text`` as provenance.

    ``quality`` (1..100) applies to JPEG and WebP; PNG is lossless.  JPEG holds no alpha: a 4-channel
    array must be composited by the caller first (InputError otherwise)."""
    if fmt not in FORMATS:
        raise InputError(f"image format {fmt!r}: not one of {', '.join(FORMATS)}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"image to encode: expected HxWx3 or HxWx4, got shape {arr.shape}")
    mode = "RGBA" if arr.shape[2] == 4 else "RGB"
    if fmt == "jpeg" and mode == "RGBA":
        raise InputError("image to encode: JPEG holds no alpha; composite the RGBA image onto a background first")
    img = Image.fromarray(to_uint8(arr), mode)
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        for k, v in (text or {}).items():
            info.add_itxt(k, v)
        img.save(buf, format="PNG", pnginfo=info, optimize=False)
    elif fmt == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality), xmp=_xmp(text or {}))
    else:
        img.save(buf, format="WEBP", quality=int(quality), method=4, xmp=_xmp(text or {}),
                 exact=mode == "RGBA")  # exact: keep the colour under transparent pixels
    return buf.getvalue()


def encode_png(arr: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of an RGB(A) array, with ``text`` as iTXt metadata (provenance)."""
    return encode(arr, "png", text=text)


def read_text(data: bytes) -> dict[str, str]:
    """The provenance of an image made by :func:`encode`: PNG text chunks, or the XMP ``nst:text`` of
    JPEG and WebP ({} when there is none)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.format == "PNG":
            return dict(getattr(img, "text", {}) or {})
        packet = img.info.get("xmp")
    if not packet:
        return {}
    try:
        root = ET.fromstring(packet if isinstance(packet, bytes) else packet.encode("utf-8"))
    except ET.ParseError:
        return {}
    for node in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"):
        blob = node.get(f"{{{_XMP_NS}}}text")
        if blob is not None:
            value = json.loads(blob)
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


def read_png_text(data: bytes) -> dict[str, str]:
    """Alias of :func:`read_text` (it reads every format :func:`encode` writes)."""
    return read_text(data)
