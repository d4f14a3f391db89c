"""nst-stylize: exit 2 with one line naming the input for each bad kind; awkward images just work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from images_factory import BAD_REASONS, CONTENT, STYLE, write_bad_files, write_odd_files

from nst_core import cli, images

FAST = ["--size", "32", "--steps", "2", "--coarse-steps", "1", "--min-size", "16", "--quiet"]


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
    out = tmp_path / "b.png"
    rc = cli.main(["--ci", str(CONTENT), "--si", str(STYLE), "--si", str(STYLE.parent / "the_scream.jpg"),
                   "--style-weights", "2,1", "--o", str(out), *FAST])
    assert rc == 0 and out.is_file()


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
