"""--mode fast|auto end to end on tiny images (DirectRunner, in process, the real engine): one network per
style, saved under OUT/models and reused on resume, --models networks used instead of training, auto
routing by rows per style, a bad style failing only its own rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from pipeline_helpers import FAST, make_image, read_jsonl, write_csv, write_jsonl

from nst_core import StyleOptions, fast
from nst_core.images import read_png_text
from pipeline.fastmode import FastConfig, key_by_style, network_name, route_groups
from pipeline.manifest import Pair
from pipeline.run import UsageError, counters, resolve_options, run

pytestmark = pytest.mark.slow

# 2 training steps on 16 px crops of 2 sampled contents: seconds per network on a CPU.
TRAIN = ["--fast_train_steps", "2", "--fast_crop", "16", "--fast_train_contents", "2"]
FAST_MODE = [*FAST, *TRAIN, "--mode", "fast"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fastcat")
    for i in range(1, 4):
        make_image(root / "content" / f"c{i}.png", 10 + i)
    make_image(root / "style" / "s1.png", 21)
    make_image(root / "style" / "s2.jpg", 22, (36, 36))
    (root / "style" / "bad.png").write_text("not an image")
    write_csv(root / "fast.csv", ["id,content,style",
                                  "a1,content/c1.png,style/s1.png", "a2,content/c2.png,style/s1.png",
                                  "a3,content/c3.png,style/s1.png",
                                  "b1,content/c1.png,style/s2.jpg", "b2,content/c2.png,style/s2.jpg",
                                  "x1,content/c1.png,style/bad.png", "x2,content/c3.png,style/bad.png"])
    return root


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.parent.name in ("images", "metrics", "models")}


@pytest.fixture(scope="module")
def fast_run(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("fastout")
    result = run(["--manifest", str(catalog / "fast.csv"), "--output", str(out), *FAST_MODE])
    return out, counters(result)


def test_fast_mode_end_to_end(fast_run, catalog):
    out, c = fast_run
    done = read_jsonl(out / "metrics.jsonl")
    assert [r["id"] for r in done] == ["a1", "a2", "a3", "b1", "b2"]
    models = sorted((out / "models").glob("*.keras"))
    assert len(models) == 2 and not [p for p in out.rglob("*") if ".tmp" in p.name]
    s1_sha = fast.style_sha256((catalog / "style" / "s1.png").read_bytes())
    for rec in done:
        assert rec["status"] == "stylized" and rec["mode"] == "fast"
        assert Path(rec["network"]["path"]).parent == out / "models"
        assert rec["network"]["training"]["steps"] == 2
        png = (out / rec["image"]).read_bytes()
        assert read_png_text(png)["nst:mode"] == "fast"
        metrics = json.loads((out / rec["metrics"]).read_text())
        assert metrics["mode"] == "fast" and metrics["network"]["training"]["crop"] == 16
        assert set(metrics["losses"]) >= {"content", "style", "tv", "total"} and metrics["fingerprint"]
        assert max(metrics["size"]) == 40
        for options in (rec["options"], metrics["options"]):  # only what a one-pass stylisation used
            assert options["size"] == 40 and not {"steps", "optimizer", "init", "preserve_colors"} & set(options)
    a1 = json.loads((out / "metrics" / "a1.json").read_text())
    assert a1["network"]["style"]["sha256"] == s1_sha  # the saved network records the style file's own bytes
    assert Path(a1["network"]["path"]).name.startswith(s1_sha[:16])
    assert (c["network_trainings"], c["networks_loaded"], c["pairs_stylized"], c["pairs_failed"]) == (2, 2, 5, 2)
    assert c["model_loads"] == 1  # the process's one VGG19 (its Stylizer) trained both networks, scored every pass


def test_bad_style_fails_only_its_rows(fast_run):
    out, _ = fast_run
    errors = read_jsonl(out / "errors.jsonl")
    assert [e["id"] for e in errors] == ["x1", "x2"]
    for e in errors:
        assert e["stage"] == "train" and "style network for" in e["reason"] and "bad.png" in e["reason"]
        assert "not an image" in e["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["balanced"] and (summary["rows"], summary["stylized"], summary["errors"]) == (7, 5, 2)
    page = (out / "report.html").read_text()
    assert "Style networks (2)" in page and "Errors by reason (2 rows, 1 reasons)" in page
    assert "stylized &middot; fast" in (out / "sheets" / "0001.html").read_text()


def test_rerun_skips_everything_and_trains_nothing(fast_run, catalog):
    out, _ = fast_run
    before = snapshot(out)
    c = counters(run(["--manifest", str(catalog / "fast.csv"), "--output", str(out), *FAST_MODE]))
    assert (c["pairs_stylized"], c["pairs_skipped"], c["pairs_failed"]) == (0, 5, 2)
    assert (c["network_trainings"], c["networks_loaded"], c["model_loads"]) == (0, 0, 0)
    assert snapshot(out) == before
    assert [r["status"] for r in read_jsonl(out / "metrics.jsonl")] == ["skipped"] * 5


def test_models_folder_network_is_used_instead_of_training(fast_run, catalog, tmp_path):
    out, _ = fast_run
    s1_sha = fast.style_sha256((catalog / "style" / "s1.png").read_bytes())
    given = tmp_path / "given"
    given.mkdir()
    (given / "notes.keras").write_text("not a network")  # passed over with a warning
    shutil.copy(next((out / "models").glob(f"{s1_sha[:16]}-*.keras")), given / "starry.keras")
    write_csv(catalog / "s1.csv", ["id,content,style", "a1,content/c1.png,style/s1.png",
                                   "a3,content/c3.png,style/s1.png"])
    out2 = tmp_path / "out"
    c = counters(run(["--manifest", str(catalog / "s1.csv"), "--output", str(out2), *FAST_MODE,
                      "--models", str(given)]))
    assert (c["network_trainings"], c["networks_loaded"], c["pairs_stylized"]) == (0, 1, 2)
    assert not (out2 / "models").exists()
    for rec in read_jsonl(out2 / "metrics.jsonl"):
        assert rec["mode"] == "fast" and rec["network"]["path"] == str(given / "starry.keras")


def test_auto_mode_routes_by_rows_per_style_and_modes_do_not_mix(fast_run, catalog, tmp_path):
    rows = [{"id": f"a{i}", "content": f"content/c{i}.png", "style": "style/s1.png"} for i in (1, 2)]
    rows += [{"id": "b1", "content": "content/c3.png", "style": "style/s2.jpg"}]
    manifest = write_jsonl(catalog / "auto.jsonl", rows)
    out = tmp_path / "out"
    # Networks an earlier run saved for these styles and settings (a killed run's): used, never retrained.
    shutil.copytree(fast_run[0] / "models", out / "models")
    argv = ["--manifest", str(manifest), "--output", str(out), *FAST, *TRAIN]
    c = counters(run([*argv, "--mode", "auto", "--fast_min_rows", "2"]))
    modes = {r["id"]: r["mode"] for r in read_jsonl(out / "metrics.jsonl")}
    assert modes == {"a1": "fast", "a2": "fast", "b1": "optimize"}
    assert (c["network_trainings"], c["networks_loaded"], c["model_loads"], c["pairs_stylized"]) == (0, 1, 1, 3)
    assert json.loads((out / "metrics" / "b1.json").read_text())["mode"] == "optimize"
    assert json.loads((out / "summary.json").read_text())["balanced"]
    # b1 was done by optimisation: it is not done for fast mode; the fast pairs are.
    c = counters(run([*argv, "--mode", "fast"]))
    assert (c["pairs_stylized"], c["pairs_skipped"], c["network_trainings"]) == (1, 2, 0)
    modes = {r["id"]: (r["mode"], r["status"]) for r in read_jsonl(out / "metrics.jsonl")}
    assert modes == {"a1": ("fast", "skipped"), "a2": ("fast", "skipped"), "b1": ("fast", "stylized")}


def test_routing_blends_and_small_groups_go_to_optimize():
    base = StyleOptions()
    one, two, blend = (Pair(id=i, line=n, content="c.png", styles=s, options=base, fingerprint=i)
                       for n, (i, s) in enumerate([("one", ("s1",)), ("two", ("s1",)), ("blend", ("s1", "s2"))]))
    assert list(key_by_style(one)) == [("s1", one)]
    [tagged] = key_by_style(blend)
    assert (tagged.tag, tagged.value) == ("optimize", blend)
    assert list(route_groups(("s1", [two, one]), "fast", 50)) == [("s1", [one, two])]
    assert list(route_groups(("s1", [two, one]), "auto", 2)) == [("s1", [one, two])]
    assert [(t.tag, t.value) for t in route_groups(("s1", [two, one]), "auto", 3)] == \
        [("optimize", one), ("optimize", two)]


@pytest.mark.parametrize("flags, needle", [(["--mode", "quick"], "--mode 'quick'"),
                                           (["--mode", "fast", "--fast_crop", "15"], "--fast_crop"),
                                           (["--mode", "fast", "--fast_train_steps", "0"], "--fast_train_steps"),
                                           (["--mode", "fast", "--fast_style_boost", "0"], "--fast_style_boost"),
                                           (["--mode", "auto", "--fast_min_rows", "0"], "--fast_min_rows"),
                                           (["--models", "/tmp"], "--models")])
def test_bad_fast_flags_are_usage_errors(catalog, flags, needle):
    with pytest.raises(UsageError) as e:
        resolve_options(PipelineOptions(["--manifest", str(catalog / "fast.csv"), "--output", "/tmp/o", *flags]))
    assert needle in str(e.value)


def test_network_name_follows_the_training_settings():
    """A network trained otherwise (boost, steps, crop) is another file, never reused by mistake."""
    opts = StyleOptions(size=64)
    base = network_name("ab" * 32, opts, FastConfig(mode="fast"))
    assert base == network_name("ab" * 32, opts, FastConfig(mode="fast"))
    others = {network_name("ab" * 32, opts, FastConfig(mode="fast", **change))
              for change in ({"style_boost": 2.0}, {"crop": 64}, {"steps": 7})}
    assert base not in others and len(others) == 3


def test_a_rows_size_override_shares_its_styles_network(fast_run, catalog, tmp_path):
    """What decides a network is the style and the loss options; a row's size only sets its output's size."""
    manifest = write_csv(catalog / "sizes.csv", ["id,content,style,size", "big,content/c1.png,style/s1.png,",
                                                 "small,content/c2.png,style/s1.png,24"])
    out = tmp_path / "out"
    c = counters(run(["--manifest", str(manifest), "--output", str(out), *FAST_MODE]))
    assert (c["network_trainings"], c["pairs_stylized"]) == (1, 2)
    sizes = {r["id"]: max(r["size"]) for r in read_jsonl(out / "metrics.jsonl")}
    assert sizes == {"big": 40, "small": 24}
    assert len(list((out / "models").glob("*.keras"))) == 1
