"""Fast mode: the style network trains with the engine's losses, saves/loads exactly, refuses foreign files."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from images_factory import CONTENT, ROOT, STYLE, gradient

from nst_core import cli, fast, images, train_cli
from nst_core.errors import InputError
from nst_core.options import StyleOptions

SAMPLE_CONTENTS = sorted((ROOT / "samples" / "content").glob("*.jpg"))
TINY = fast.Architecture(width=8, blocks=1)


@pytest.fixture(scope="module")
def trained():
    """A tiny network trained on one fixed 32px crop: every step sees the same batch (up to flips)."""
    content = images.resize(images.load_image(CONTENT), (32, 32))
    opts = StyleOptions(size=32)
    cfg = fast.TrainConfig(steps=25, batch_size=2, crop=32, learning_rate=0.01)
    model, figures = fast.train_style_network(STYLE, [content], opts, cfg, arch=TINY, style_name=str(STYLE))
    return model, figures, content


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    return fast.save_style_network(trained[0], tmp_path_factory.mktemp("m") / "starry.keras")


def test_snapshots_see_the_network_at_the_listed_steps():
    content = images.resize(images.load_image(CONTENT), (32, 32))
    seen: dict[int, list[np.ndarray]] = {}

    def snapshot(step, model):
        seen[step] = [w.copy() for w in model.get_weights()]

    cfg = fast.TrainConfig(steps=4, batch_size=1, crop=32, learning_rate=0.01, style_boost=3.0)
    opts = StyleOptions(size=32)
    model, figures = fast.train_style_network(STYLE, [content], opts, cfg, arch=TINY,
                                              snapshot=snapshot, snapshot_steps=(2, 4))
    assert sorted(seen) == [2, 4]
    # The boost multiplies the style weight of the training loss, and is recorded.
    assert figures["style_boost"] == 3.0
    for e in figures["trace"]:
        want = opts.content_weight * e["content"] + 3.0 * opts.style_weight * e["style"] + opts.tv_weight * e["tv"]
        assert e["total"] == pytest.approx(want, rel=1e-4)
    final = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(seen[4], final))
    assert not all(np.array_equal(a, b) for a, b in zip(seen[2], final))  # weights moved after step 2


def test_batch_gram_matches_numpy():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((3, 5, 7, 4)).astype(np.float32)
    want = np.einsum("bhwc,bhwd->bcd", f.astype(np.float64), f) / (5 * 7)
    np.testing.assert_allclose(fast.batch_gram(tf.constant(f)).numpy(), want, rtol=1e-5, atol=1e-6)
    from nst_core import losses

    np.testing.assert_allclose(fast.batch_gram(tf.constant(f[1:2])).numpy()[0],
                               losses.gram(tf.constant(f[1:2])).numpy(), rtol=1e-6)


def test_untrained_skip_network_is_the_identity():
    model = fast.build_network(fast.Architecture(width=8, blocks=1, skip=True))
    x = images.load_image(gradient(40, 28))
    np.testing.assert_allclose(fast.apply_network(model, x), np.clip(x, 0.255, 254.745), atol=0.05)


def test_training_lowers_the_loss(trained):
    model, figures, content = trained
    trace = figures["trace"]
    assert len(trace) == figures["steps"] == 25 and figures["batch_size"] == 2 and figures["crop"] == 32
    assert figures["seconds"] > 0 and figures["precision"] in ("float32", "bfloat16", "float16")
    first, last = trace[0]["total"], np.mean([e["total"] for e in trace[-3:]])
    assert last < 0.9 * first, (first, last)
    # The trained network beats its starting point (the content itself) on the engine's own losses.
    opts = StyleOptions(size=32)
    style = images.load_image(STYLE)
    before = fast.fast_losses(content, content, style, opts, figures["precision"])
    after = fast.fast_losses(fast.apply_network(model, content), content, style, opts, figures["precision"])
    assert after["total"] < before["total"] and after["style"] < before["style"]


def test_save_load_round_trip_is_identical(trained, saved):
    model = trained[0]
    net = fast.load_style_network(saved)
    x = images.load_image(gradient(44, 36))
    np.testing.assert_array_equal(fast.apply_network(model, x), fast.apply_network(net.model, x))
    meta = net.meta
    assert meta["format"] == fast.FORMAT and meta["version"] == fast.FORMAT_VERSION
    assert meta["style"]["name"] == "starry_night.jpg"
    assert meta["style"]["sha256"] == __import__("hashlib").sha256(STYLE.read_bytes()).hexdigest()
    assert meta["training"]["steps"] == 25 and len(meta["training"]["trace"]) == 25
    assert net.options.size == 32 and meta["architecture"] == {"width": 8, "blocks": 1, "skip": False}


def _refused(path: Path, needle: str) -> None:
    with pytest.raises(InputError) as e:
        fast.load_style_network(path)
    msg = str(e.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


def test_foreign_files_are_refused(tmp_path, saved):
    text = tmp_path / "notes.keras"
    text.write_text("not a model\n")
    _refused(text, "not a zip")
    rnd = tmp_path / "random.keras"
    with zipfile.ZipFile(rnd, "w") as z:
        z.writestr("hello.txt", "hi")
    _refused(rnd, "without the nst_fast.json marker")
    plain = tmp_path / "plain.keras"
    fast.build_network(TINY).save(plain)
    _refused(plain, "a plain Keras model without the nst_fast.json marker")
    _refused(tmp_path / "missing.keras", "file not found")
    _refused(tmp_path, "directory")
    # Our file with another format version, or another format name, or a swapped style image.
    for name, change, needle in [("v2", {"version": 2}, "format version 2"),
                                 ("other", {"format": "someone-else"}, "format 'someone-else'"),
                                 ("sha", {"style": "swap"}, "does not match its sha256")]:
        bad = tmp_path / f"{name}.keras"
        with zipfile.ZipFile(saved) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.namelist():
                data = src.read(item)
                if item == fast.META_ENTRY:
                    meta = json.loads(data)
                    if change.get("style") == "swap":
                        meta["style"]["sha256"] = "0" * 64
                    else:
                        meta.update(change)
                    data = json.dumps(meta).encode()
                dst.writestr(item, data)
        _refused(bad, needle)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    _refused(truncated, "not a zip")


@pytest.mark.parametrize("hw", [(37, 53), (1, 40), (40, 1), (1, 1), (3, 5), (17, 16)])
def test_any_size_works(trained, hw):
    x = np.random.default_rng(1).uniform(0, 255, (*hw, 3)).astype(np.float32)
    y = fast.apply_network(trained[0], x)
    assert y.shape == x.shape and np.all(np.isfinite(y)) and y.min() >= 0 and y.max() <= 255


def test_bad_training_config_is_refused():
    with pytest.raises(InputError, match="crop 30"):
        fast.TrainConfig(crop=30)
    with pytest.raises(InputError, match="batch size 0"):
        fast.TrainConfig(batch_size=0)
    with pytest.raises(InputError, match="style boost 0"):
        fast.TrainConfig(style_boost=0)
    with pytest.raises(InputError, match="no content image matches"):
        fast.expand_contents("/nonexistent/*.jpg")


def test_stylize_with_network_result(saved):
    res = fast.stylize_with_network(saved, CONTENT, 48)
    assert max(res.image.shape[:2]) == 48 and res.image.dtype == np.uint8
    assert all(np.isfinite(v) for v in res.losses.values()) and res.options.size == 48
    m = json.loads(res.metrics_json())
    assert m["mode"] == "fast" and m["network"]["style"]["name"] == "starry_night.jpg"
    text = images.read_png_text(res.png_bytes())
    assert text["nst:mode"] == "fast" and json.loads(text["nst:options"])["size"] == 48


def test_cli_train_then_stylize(tmp_path, capsys):
    model = tmp_path / "starry.keras"
    pattern = str(SAMPLE_CONTENTS[0].parent / "*")
    rc = train_cli.main(["--style", str(STYLE), "--contents", pattern, "--output", str(model), "--steps", "3",
                         "--batch-size", "2", "--crop", "32", "--size", "64", "--width", "8", "--blocks", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "3/3" in err and "style" in err and "wrote" in err
    trace = json.loads((tmp_path / "starry.trace.json").read_text())
    assert len(trace["trace"]) == 3 and trace["contents"] == [str(p) for p in SAMPLE_CONTENTS]
    out = tmp_path / "out.png"
    rc = cli.main(["--model", str(model), "--ci", str(SAMPLE_CONTENTS[-1]), "--o", str(out), "--size", "40",
                   "--metrics", str(tmp_path / "m.json"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert max(images.load_image(out).shape[:2]) == 40
    assert images.read_png_text(out.read_bytes())["nst:mode"] == "fast"
    assert json.loads((tmp_path / "m.json").read_text())["network"]["style"]["name"] == "starry_night.jpg"
    # Output folder: <content>_<model>.png
    assert cli.main(["--model", str(model), "--ci", str(CONTENT), "--o", str(tmp_path) + "/", "--size", "24",
                     "--quiet"]) == 0
    assert (tmp_path / "chelsea_starry.png").is_file()


def test_cli_bad_model_exit_2(tmp_path, capsys, saved):
    bad = tmp_path / "bad.keras"
    bad.write_text("nope")
    cases = [(["--model", str(bad)], "not a zip"),
             (["--model", str(tmp_path / "gone.keras")], "file not found"),
             (["--model", str(saved), "--si", str(STYLE)], "not both"),
             (["--model", str(saved), "--size", "0"], "size")]
    for extra, needle in cases:
        rc = cli.main(["--ci", str(CONTENT), "--o", str(tmp_path / "o.png"), "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and len(err.splitlines()) == 1, (extra, err)
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit) as e:
        cli.main(["--ci", str(CONTENT), "--o", str(tmp_path / "o.png")])
    assert e.value.code == 2 and "--model" in capsys.readouterr().err


def test_train_cli_bad_input_exit_2(tmp_path, capsys):
    base = ["--style", str(STYLE), "--contents", str(CONTENT), "--quiet"]
    cases = [([*base, "--output", str(tmp_path / "m.h5")], "must end in .keras"),
             (["--style", str(STYLE), "--contents", str(tmp_path / "*.jpg"), "--output", str(tmp_path / "m.keras")],
              "no content image matches"),
             ([*base, "--output", str(tmp_path / "m.keras"), "--crop", "30"], "crop 30"),
             ([*base, "--output", str(tmp_path / "m.keras"), "--style-weight", "-1"], "style_weight"),
             (["--style", str(tmp_path / "none.jpg"), "--contents", str(CONTENT), "--output",
               str(tmp_path / "m.keras")], "file not found"),
             ([*base, "--output", str(tmp_path / "nodir" / "m.keras")], "does not exist")]
    for argv, needle in cases:
        rc = train_cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and len(err.splitlines()) == 1, (argv, err)
    assert not list(tmp_path.glob("*.keras"))


def test_console_script_help():
    exe = Path(sys.executable).with_name("nst-train-style")
    if not exe.exists():
        pytest.skip("nst-train-style not installed (pip install -e .)")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--contents" in out.stdout and "--crop" in out.stdout
