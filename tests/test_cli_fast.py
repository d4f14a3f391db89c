"""nst-stylize --model: flags that do not apply are named once; provenance records only what applied."""

import json

import pytest
from images_factory import CONTENT, STYLE

from nst_core import cli, fast, images, weights
from nst_core.options import StyleOptions

NOT_APPLIED = ("steps", "coarse_steps", "num_scales", "optimizer", "learning_rate", "init", "preserve_colors",
               "refine", "style_blend", "upsample_detail")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    content = images.resize(images.load_image(CONTENT), (16, 16))
    net, _ = fast.train_style_network(STYLE, [content], StyleOptions(size=32),
                                      fast.TrainConfig(steps=1, batch_size=1, crop=16),
                                      arch=fast.Architecture(width=4, blocks=0), style_name=str(STYLE))
    return fast.save_style_network(net, tmp_path_factory.mktemp("net") / "starry.keras")


def test_ignored_flags_warned_once_and_left_out_of_the_metadata(tmp_path, capsys, model):
    out, metrics = tmp_path / "o.png", tmp_path / "m.json"
    rc = cli.main(["--model", str(model), "--ci", str(CONTENT), "--o", str(out), "--metrics", str(metrics),
                   "--size", "24", "--steps", "5", "--preserve-colors", "luminance", "--optimizer", "adam",
                   "--init", "noise", "--save-every", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 0, err
    assert err.splitlines() == ["nst-stylize: warning: --model stylises in one pass: ignoring --steps, --optimizer, "
                                "--init, --preserve-colors, --save-every (only --size, --precision, --weights, "
                                "--memory-budget, --image-quality, --mask-feather, --mask-output, --background apply)"]
    recorded = json.loads(metrics.read_text())["options"]
    png = json.loads(images.read_png_text(out.read_bytes())["nst:options"])
    assert recorded == png == fast.applied_options(StyleOptions(size=24))
    assert recorded["size"] == 24 and not set(NOT_APPLIED) & set(recorded)
    assert not list(tmp_path.glob("o.step*.png"))


def test_no_warning_when_every_flag_applies(tmp_path, capsys, model):
    cache = weights.cache_dir() / weights.CACHE_NAME
    if not cache.is_file():
        pytest.skip("weights not fetched (run `make weights`)")
    rc = cli.main(["--model", str(model), "--ci", str(CONTENT), "--o", str(tmp_path / "o.png"), "--size", "24",
                   "--precision", "float32", "--weights", str(cache), "--quiet"])
    assert rc == 0 and capsys.readouterr().err == ""


def test_bad_weights_exit_2_in_fast_mode(tmp_path, capsys, model):
    rc = cli.main(["--model", str(model), "--ci", str(CONTENT), "--o", str(tmp_path / "o.png"),
                   "--weights", str(tmp_path / "none.npz"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"nst-stylize: error: weights {tmp_path / 'none.npz'}: no such weights file"
    assert not (tmp_path / "o.png").exists()


def test_a_refused_model_run_is_one_line_even_with_ignored_flags(tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_text("nope")
    rc = cli.main(["--model", str(bad), "--ci", str(CONTENT), "--o", str(tmp_path / "o.png"), "--steps", "3"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "not a zip" in err, err
