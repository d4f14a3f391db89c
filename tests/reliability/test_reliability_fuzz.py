"""Property-based: random manifests whose rows point at random or mangled image files.  parse() and
load_image() together never raise anything but the project's own error types, every row becomes exactly one
Pair or RowError, and every image either decodes to a finite HxWx3 array or is refused naming its file."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst_core import InputError, NSTError, StyleOptions
from nst_core.images import load_image
from pipeline.manifest import ManifestError, Pair, RowError, parse

BASE = StyleOptions(size=32, steps=2, coarse_steps=1, min_size=16)


def _seed_images() -> list[bytes]:
    g = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    out = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("PNG", "RGBA"), ("TIFF", "RGB"),
                      ("BMP", "RGB"), ("WEBP", "RGB"), ("PNG", "I;16")):
        img = Image.fromarray(g[..., 0].astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(g).convert(mode)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def image_bytes(draw) -> bytes:
    """Pure noise, or a real image truncated and/or with bytes flipped (reaches deep into the decoders)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


cells = st.one_of(st.text(max_size=10), st.sampled_from(["0", "-1", "nan", "inf", "1e99", "64", "adam", "..", "a/b",
                                                         "", " ", "\x00", "\ufeff", "\u202e"]))
columns = st.sampled_from(["id", "size", "steps", "seed", "style_weight", "content_weight", "optimizer", "init",
                           "precision", "bogus", "style_blend"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=st.lists(image_bytes(), min_size=1, max_size=4),
       rows=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.dictionaries(columns, cells, max_size=3)),
                     max_size=6),
       as_jsonl=st.booleans(), junk=st.binary(max_size=40))
def test_random_rows_and_images_only_raise_project_errors(files, rows, as_jsonl, junk):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        names = []
        for i, data in enumerate(files):
            (root / f"f{i}.img").write_bytes(data)
            names.append(f"f{i}.img")
        names += ["missing.png", ""]
        header = ["content", "style", "id", "size", "steps", "seed", "style_weight", "content_weight", "optimizer",
                  "init", "precision", "bogus", "style_blend"]
        dicts = [{"content": names[c % len(names)], "style": names[s % len(names)], **extra} for c, s, extra in rows]
        if as_jsonl:
            body = "".join(json.dumps(r) + "\n" for r in dicts).encode() + junk
            name = str(root / "m.jsonl")
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=header)
            w.writeheader()
            w.writerows(dicts)
            body = buf.getvalue().encode() + junk
            name = str(root / "m.csv")
        try:
            items = list(parse(body, name, BASE))
        except ManifestError:
            return
        assert all(isinstance(i, (Pair, RowError)) for i in items)
        assert len({i.line for i in items}) == len(items)  # one outcome per row
        for item in items:
            if isinstance(item, RowError):
                assert item.reason
                continue
            for path in (item.content, *item.styles):
                try:
                    arr = load_image(path, path)
                except InputError as e:
                    assert str(e).startswith(path)
                except NSTError:
                    pass
                else:
                    assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.float32
                    assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 255
