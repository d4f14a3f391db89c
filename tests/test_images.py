"""Safe decoding: every bad kind refused with a reason naming the file; awkward kinds loaded right."""

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from images_factory import BAD_REASONS, gradient, write_bad_files, write_odd_files
from PIL import Image

from nst_core import images
from nst_core.errors import InputError


@pytest.mark.parametrize("kind", sorted(BAD_REASONS))
def test_bad_inputs_refused_with_reason(tmp_path, kind):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(InputError) as e:
        images.load_image(path)
    msg = str(e.value)
    assert str(path) in msg
    assert BAD_REASONS[kind] in msg


def test_odd_inputs_load_as_rgb(tmp_path):
    files = write_odd_files(tmp_path)
    g = gradient().astype(np.float32)
    rgba = images.load_image(files["rgba"])
    assert rgba.shape == (30, 40, 3)
    assert (rgba[:5, :5] == 255).all()  # transparency flattened onto white
    np.testing.assert_allclose(rgba[10:, 10:], g[10:, 10:])
    grey = images.load_image(files["grey"])
    assert grey.shape == (30, 40, 3) and (grey[..., 0] == grey[..., 2]).all()
    np.testing.assert_allclose(grey[..., 0], g[..., 0])
    cmyk = images.load_image(files["cmyk"])
    assert cmyk.shape == (30, 40, 3) and np.abs(cmyk - g).mean() < 8
    sixteen = images.load_image(files["png16"])
    assert sixteen.shape == (30, 40, 3)
    np.testing.assert_allclose(sixteen[..., 0], g[..., 0], atol=1)
    rotated = images.load_image(files["exif"])
    assert rotated.shape == (40, 30, 3)  # EXIF orientation applied: portrait now
    # After a 90 degree clockwise turn the old left column (red = 0) is the top row.
    assert rotated[0, :, 0].mean() < 30 and rotated[-1, :, 0].mean() > 220
    gif = images.load_image(files["gif"])
    assert gif.shape == (30, 40, 3) and np.abs(gif - g).mean() < 20  # the first frame
    assert images.load_image(files["palette"]).shape == (30, 40, 3)


def test_arrays_and_pil_accepted():
    g = gradient()
    np.testing.assert_allclose(images.load_image(g), g)
    np.testing.assert_allclose(images.load_image(g.astype(np.float32) / 255.0), g, atol=1e-3)
    np.testing.assert_allclose(images.load_image(Image.fromarray(g)), g)
    with pytest.raises(InputError, match="shape"):
        images.load_image(np.zeros((0, 4, 3)))
    with pytest.raises(InputError, match="NaN"):
        images.load_image(np.full((4, 4, 3), np.nan))


def test_png_carries_provenance_text():
    data = images.encode_png(gradient(), {"nst:seed": "7", "nst:options": '{"size": 64}'})
    assert images.read_png_text(data)["nst:seed"] == "7"
    assert images.load_image(data).shape == (30, 40, 3)


def test_fit_size_keeps_aspect_and_never_zero():
    assert images.fit_size((300, 451), 512) == (341, 512)
    assert images.fit_size((1, 1000), 64) == (1, 64)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_loader(data):
    try:
        arr = images.load_image(data, "fuzz")
    except InputError as e:
        assert str(e).startswith("fuzz")
    else:
        assert arr.ndim == 3 and arr.shape[2] == 3


@pytest.mark.parametrize("fmt", images.FORMATS)
@pytest.mark.parametrize("channels", [3, 4])
def test_every_format_round_trips_pixels_alpha_and_provenance(fmt, channels):
    rng = np.random.default_rng(5)
    arr = np.concatenate([gradient(), rng.integers(0, 256, (*gradient().shape[:2], 1))], axis=2)[..., :channels]
    text = {"Software": "nst_core test", "nst:options": json.dumps({"size": 64, "note": "<&\"'> é"}), "nst:seed": "7"}
    if fmt == "jpeg" and channels == 4:
        with pytest.raises(InputError, match="JPEG holds no alpha"):
            images.encode(arr, fmt, 90, text)
        return
    data = images.encode(arr, fmt, 95, text)
    assert images.read_text(data) == text
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert decoded.shape == arr.shape  # alpha kept where the format holds it
    tolerance = 0 if fmt == "png" else 20
    assert np.abs(decoded.astype(int) - arr.astype(int)).mean() <= tolerance
    if channels == 4:
        assert np.array_equal(decoded[..., 3], arr[..., 3].astype(np.uint8))  # webp alpha is lossless


def test_quality_trades_size_and_extension_picks_format():
    arr = gradient()
    assert len(images.encode(arr, "jpeg", 30)) < len(images.encode(arr, "jpeg", 95))
    names = ("a.PNG", "b.jpg", "c.jpeg", "d.webp")
    assert [images.format_for_path(p) for p in names] == ["png", "jpeg", "jpeg", "webp"]
    with pytest.raises(InputError, match=r"out\.tif: unknown image extension \.tif"):
        images.format_for_path("out.tif")
