"""nst-stylize: exit 2 with one line naming the input for each bad kind; awkward images just work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from images_factory import BAD_REASONS, CONTENT, STYLE, write_bad_files, write_odd_files
from PIL import Image

from nst_core import cli, images

FAST = ["--size", "32", "--steps", "2", "--coarse-steps", "1",
        "--coarse-steps-power", "1", "--min-size", "16", "--quiet"]


@pytest.mark.parametrize("kind", sorted(BAD_REASONS))
@pytest.mark.parametrize("role", ["content", "style"])
def test_bad_input_exit_2_one_line(tmp_path, capsys, kind, role):
    bad = write_bad_files(tmp_path / "bad")[kind]
    content, style = (bad, STYLE) if role == "content" else (CONTENT, bad)
    rc = cli.main(["--ci", str(content), "--si", str(style), "--o", str(tmp_path / "o.png"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert str(bad) in err and BAD_REASONS[kind] in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args, needle", [
    (["--size", "0"], "size"), (["--style-weight", "-2"], "style_weight"), (["--tv-weight", "nan"], "tv_weight"),
    (["--style-weights", "1,2"], "style-weights"),
])
def test_bad_option_exit_2(tmp_path, capsys, args, needle):
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(tmp_path / "o.png"), *FAST, *args])
    assert rc == 2 and needle in capsys.readouterr().err


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--ci", str(CONTENT)])
    assert e.value.code == 2


def test_output_folder_and_aliases(tmp_path, capsys):
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(tmp_path) + "/", *FAST,
                   "--metrics", str(tmp_path / "m.json"), "--save-every", "1"])
    assert rc == 0
    out = tmp_path / "chelsea_starry_night.png"
    assert out.is_file() and max(images.load_image(out).shape[:2]) == 32
    # 8 steps at 16px (1 step of a 128px scale, scaled by 128 / 16) + 2 at 32px
    assert json.loads((tmp_path / "m.json").read_text())["steps"] == 10
    assert len(list(tmp_path.glob("chelsea_starry_night.step*.png"))) == 10


@pytest.mark.parametrize("kind", ["rgba", "grey", "cmyk", "png16", "exif", "gif", "palette"])
def test_awkward_images_stylise(tmp_path, kind):
    odd = write_odd_files(tmp_path / "odd")[kind]
    out = tmp_path / "o.png"
    assert cli.main(["--ci", str(odd), "--si", str(odd), "--o", str(out), *FAST]) == 0
    h, w = images.load_image(out).shape[:2]
    assert (h, w) == ((32, 24) if kind == "exif" else (24, 32))


def test_blend_of_styles(tmp_path):
    scream = STYLE.parent / "the_scream.jpg"
    out, single, metrics = tmp_path / "b.png", tmp_path / "s.png", tmp_path / "b.json"
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--si", str(scream), "--style-weights", "2,1",
                   "--o", str(out), "--metrics", str(metrics), *FAST])
    assert rc == 0 and cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(single), *FAST]) == 0
    text = images.read_png_text(out.read_bytes())
    assert [Path(s).name for s in json.loads(text["nst:styles"])] == ["starry_night.jpg", "the_scream.jpg"]
    assert json.loads(text["nst:options"])["style_blend"] == [2.0, 1.0]
    assert json.loads(metrics.read_text())["options"]["style_blend"] == [2.0, 1.0]
    # the second painting took part: same seed and options, another picture than the first style alone
    diff = abs(images.load_image(out).astype(float) - images.load_image(single).astype(float)).mean()
    assert diff > 1.0, diff


def test_console_script_writes_everything_before_its_fast_exit(tmp_path):
    """nst-stylize skips the interpreter's teardown (os._exit): its outputs must still be whole."""
    exe = Path(sys.executable).parent / "nst-stylize"
    out, metrics = tmp_path / "o.png", tmp_path / "m.json"
    ok = subprocess.run([str(exe), "--ci", str(CONTENT), "--si", str(STYLE), "--o", str(out), *FAST,
                         "--metrics", str(metrics)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert max(images.load_image(out).shape[:2]) == 32
    assert json.loads(metrics.read_text())["steps"] == 10
    bad = subprocess.run([str(exe), "--ci", str(tmp_path / "missing.jpg"), "--si", str(STYLE), "--o", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.jpg" in bad.stderr


# --- issue 15: checks before any work, snapshots, progress, metrics ------------------------------

def _run(tmp_path, capsys, *extra, out=None):
    out = out or tmp_path / "o.png"
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(out), *FAST, *extra])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("extra, needle", [
    (["--weights", "{tmp}/missing.npz"], "weights {tmp}/missing.npz: no such weights file"),
    (["--weights", "{tmp}"], "is a directory, not a weights file"),
    (["--metrics", "{tmp}/"], "--metrics {tmp}/: is a folder"),
    (["--metrics", "{tmp}"], "--metrics {tmp}: is a folder"),
    (["--metrics", "{tmp}/nodir/m.json"], "the folder {tmp}/nodir does not exist"),
    (["--metrics", "{tmp}/o.png"], "the same file as the output image"),
    (["--save-every", "-1"], "--save-every -1: expected 0"),
    (["--style-weights", "-1,2", "--si", str(STYLE)], "option style_blend: -1.0 is below the minimum 0"),
    (["--style-blend", "-1"], "option style_blend: -1.0 is below the minimum 0"),
    (["--init", "{tmp}/none.png"], "--init {tmp}/none.png: file not found"),
])
def test_bad_flag_exit_2_one_line_before_any_work(tmp_path, capsys, extra, needle):
    rc, err = _run(tmp_path, capsys, *[a.format(tmp=tmp_path) for a in extra])
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and needle.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("output, needle", [
    ("/proc/", "--output /proc/chelsea_starry_night.png: cannot write in /proc"),
    ("{tmp}/nodir/o.png", "--output {tmp}/nodir/o.png: the folder {tmp}/nodir does not exist"),
])
def test_bad_output_exit_2_one_line(tmp_path, capsys, output, needle):
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", output.format(tmp=tmp_path), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle.format(tmp=tmp_path) in err, err


def test_existing_output_overwritten_with_a_note_or_refused(tmp_path, capsys):
    out, metrics = tmp_path / "o.png", tmp_path / "m.json"
    assert _run(tmp_path, capsys, "--metrics", str(metrics))[0] == 0
    before = out.read_bytes()
    rc, err = _run(tmp_path, capsys, "--metrics", str(metrics), "--no-clobber")
    assert rc == 2 and len(err.splitlines()) == 1 and "--no-clobber refuses" in err and str(out) in err
    assert out.read_bytes() == before
    rc, err = _run(tmp_path, capsys, "--metrics", str(metrics), "--seed", "3")
    assert rc == 0 and f"nst-stylize: overwriting {out}, {metrics}" in err  # said even under --quiet
    assert out.read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no probe or temporary files left


def test_luminance_snapshots_have_colour_and_provenance(tmp_path, capsys):
    out = tmp_path / "o.png"
    rc, err = _run(tmp_path, capsys, "--save-every", "2", "--preserve-colors", "luminance")
    assert rc == 0, err
    shots = sorted(tmp_path.glob("o.step*.png"))
    assert [p.name for p in shots] == [f"o.step{n:04d}.png" for n in (2, 4, 6, 8, 10)]
    final_text = images.read_png_text(out.read_bytes())
    for shot in shots:
        rgb = images.load_image(shot)
        assert abs(rgb[..., 0] - rgb[..., 2]).mean() > 5, f"{shot.name} is grey"
        text = images.read_png_text(shot.read_bytes())
        assert set(final_text) < set(text) and text["nst:options"] == final_text["nst:options"]
        assert json.loads(text["nst:snapshot"])["step"] == int(shot.stem[-4:])
    # the last step's snapshot is the final image, coloured the same way
    assert (images.load_image(shots[-1]) == images.load_image(out)).all()


def test_progress_shows_the_scale_and_metrics_say_height_and_width(tmp_path, capsys):
    args = [a for a in FAST if a != "--quiet"]
    metrics = tmp_path / "m.json"
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(tmp_path / "o.png"), *args,
                   "--metrics", str(metrics)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "scale 1/2 16x11 " in err and "scale 2/2 32x21 refine " in err and "10/10" in err
    m = json.loads(metrics.read_text())
    h, w = images.load_image(tmp_path / "o.png").shape[:2]
    assert (m["height"], m["width"], m["size"]) == (h, w, [h, w]) == (21, 32, [21, 32])
    assert f"({w}x{h} px, width x height;" in err.splitlines()[-1]


def test_train_cli_checks_weights_and_output_before_any_work(tmp_path, capsys):
    from nst_core import train_cli

    base = ["--style", str(STYLE), "--contents", str(CONTENT), "--quiet", "--steps", "1"]
    for extra, needle in [(["--output", str(tmp_path / "m.keras"), "--weights", str(tmp_path / "w.h5")],
                           "no such weights file"),
                          (["--output", "/proc/m.keras"], "cannot write in /proc"),
                          (["--output", str(tmp_path / "m.keras"), "--trace", str(tmp_path)], "is a folder"),
                          (["--output", str(tmp_path / "m.keras"), "--style-layer-weights", "-1,1,1,1,1"],
                           "below the minimum")]:
        rc = train_cli.main([*base, *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and needle in err, (extra, err)
    assert not list(tmp_path.glob("*.keras"))


def test_a_failed_write_after_the_work_is_one_line(tmp_path, capsys, monkeypatch):
    from nst_core import outfiles

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outfiles, "write_atomic", full)
    rc, err = _run(tmp_path, capsys)
    assert rc == 1 and err == f"nst-stylize: failed: cannot write {tmp_path / 'o.png'} (No space left on device)"


def test_mask_stylizes_inside_only_and_a_bad_mask_is_exit_2(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    content = images.to_uint8(images.resize(images.load_image(CONTENT), (24, 32)))
    Image.fromarray(content).save(tmp_path / "c.png")
    m = np.zeros((12, 16), np.uint8)
    m[:, 8:] = 255  # right half, at half the content's size
    Image.fromarray(m).save(tmp_path / "m.png")
    out, metrics = tmp_path / "o.png", tmp_path / "o.json"
    rc = cli.main(["--ci", str(tmp_path / "c.png"), "--si", str(STYLE), "--o", str(out), "--mask",
                   str(tmp_path / "m.png"), "--metrics", str(metrics), *FAST])
    assert rc == 0, capsys.readouterr().err
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert (got[:, :12] == content[:, :12]).all() and np.abs(got[:, 20:] - content[:, 20:]).mean() > 5
    assert json.loads(metrics.read_text())["mask"] == str(tmp_path / "m.png")
    Image.new("L", (16, 12), 0).save(tmp_path / "black.png")
    (tmp_path / "text.png").write_text("no image")
    for bad, why in (("black.png", "all black"), ("text.png", "not an image"), ("none.png", "not found")):
        rc = cli.main(["--ci", str(tmp_path / "c.png"), "--si", str(STYLE), "--o", str(tmp_path / "x.png"),
                       "--mask", str(tmp_path / bad), *FAST])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and f"mask {tmp_path / bad}" in err and why in err, err
    assert not (tmp_path / "x.png").exists()


def test_a_cutout_keeps_its_alpha(tmp_path):
    import numpy as np
    from PIL import Image

    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., :3] = images.to_uint8(images.resize(images.load_image(CONTENT), (24, 32)))
    rgba[4:20, 6:26, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    assert cli.main(["--ci", str(tmp_path / "cut.png"), "--si", str(STYLE), "--o", str(tmp_path / "o.png"), *FAST]) == 0
    got = np.asarray(Image.open(tmp_path / "o.png"))
    assert got.shape == (24, 32, 4) and (got[..., 3] == rgba[..., 3]).all()


@pytest.mark.parametrize("name, fmt", [("o.jpg", "JPEG"), ("o.webp", "WEBP")])
def test_output_extension_picks_the_format_and_provenance_follows(tmp_path, name, fmt):
    out = tmp_path / name
    assert cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(out), "--image-quality", "70", *FAST]) == 0
    assert Image.open(out).format == fmt
    assert json.loads(images.read_text(out.read_bytes())["nst:options"])["steps"] == 2


def test_unknown_output_extension_is_one_line_before_any_work(tmp_path, capsys):
    assert cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--o", str(tmp_path / "o.tif"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "o.tif: unknown image extension .tif" in err


def test_a_cutout_as_jpeg_is_composited_onto_the_background(tmp_path):
    import numpy as np
    from PIL import Image

    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., :3] = images.to_uint8(images.resize(images.load_image(CONTENT), (24, 32)))
    rgba[4:20, 6:26, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    out, metrics = tmp_path / "o.jpg", tmp_path / "o.json"
    assert cli.main(["--ci", str(tmp_path / "cut.png"), "--si", str(STYLE), "--o", str(out), "--metrics",
                     str(metrics), *FAST]) == 0
    got = np.asarray(Image.open(out)).astype(int)
    assert got.shape == (24, 32, 3) and (got[:2, :2] >= 245).all()  # white where it was transparent
    assert json.loads(metrics.read_text())["alpha"] == "composited onto #ffffff"
