"""deploy/metadata.json: exactly the pipeline's own options, generated (not hand-kept) and up to date."""

from __future__ import annotations

import json
import re

import deploy_paths  # noqa: F401  (puts deploy/ on sys.path)
import make_metadata
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from nst_core.options import specs
from pipeline import options as pipeline_options
from pipeline.options import NSTPipelineOptions
from pipeline.run import UsageError, resolve_options

COMMITTED = json.loads(make_metadata.METADATA.read_text())
PARAMS = {p["name"]: p for p in COMMITTED["parameters"]}


def test_committed_file_is_what_the_generator_makes_now():
    assert make_metadata.METADATA.read_text() == make_metadata.render(make_metadata.build_metadata()), (
        "deploy/metadata.json is stale: run `python deploy/make_metadata.py` and commit it")
    assert make_metadata.main(["--check"]) == 0


def test_parameters_are_exactly_the_options_class_flags():
    parser_dests = {a.dest for a in make_metadata.pipeline_actions()}
    # what Beam itself sees of the options class (public API): every flag the metadata is made from
    assert parser_dests <= set(PipelineOptions([]).view_as(NSTPipelineOptions).get_all_options())
    local = set(make_metadata.LOCAL_ONLY)
    assert local < parser_dests and set(PARAMS) == parser_dests - local
    assert set(PARAMS) == set(pipeline_options.flag_names()) - local
    assert [p["name"] for p in COMMITTED["parameters"]] == [n for n in dict.fromkeys(pipeline_options.flag_names())
                                                            if n not in local]
    # and nothing of Beam's or Dataflow's own options (those are launch settings, not template parameters)
    assert not set(PARAMS) & {"runner", "project", "region", "temp_location", "sdk_container_image"}


def test_every_parameter_reaches_the_pipeline_as_the_launcher_passes_it():
    # The Flex launcher runs `python flex_main.py --name=value`: the options class must accept that spelling.
    for name, param in PARAMS.items():
        value = _example_value(name)
        opts = PipelineOptions([f"--{name}={value}"]).view_as(NSTPipelineOptions)
        assert getattr(opts, name) is not None, name
        assert any(re.fullmatch(rx, value) for rx in param["regexes"]), (name, value)


def _example_value(name: str) -> str:
    if name in make_metadata.PATH_PARAMS:
        return {"contents": "gs://nst-bucket/in/*.jpg", "styles": "gs://nst-bucket/in/*.jpg",
                "masks": "gs://nst-bucket/masks/{stem}.png"}.get(name, "gs://nst-bucket/path/file.csv")
    if name in pipeline_options.PIPELINE_CHOICES:
        return pipeline_options.PIPELINE_CHOICES[name][-1]
    spec = {s.name: s for s in specs()}.get(name)
    if spec is not None:
        return spec.default_text() or ("1.0" if spec.type == "list" and not spec.choices else "")
    if name == "accelerator":
        return "type:nvidia-l4;count:1;install-nvidia-driver"
    if pipeline_options.PIPELINE_FLAGS[name][0] is bool:
        return "true"
    return "160"


def test_help_labels_and_regexes():
    for name, p in PARAMS.items():
        assert p["label"] and p["helpText"] and len(p["helpText"]) > 10, name
        assert isinstance(p["isOptional"], bool)
        for rx in p["regexes"]:
            re.compile(rx)
    assert PARAMS["precision"]["regexes"] == ["^(auto|float32|bfloat16|float16)$"]
    assert re.fullmatch(PARAMS["steps"]["regexes"][0], "200") and not re.fullmatch(PARAMS["steps"]["regexes"][0],
                                                                                      "-1")
    assert re.fullmatch(PARAMS["style_layers"]["regexes"][0], "block1_conv1,block2_conv1")
    assert not re.fullmatch(PARAMS["style_layers"]["regexes"][0], "block9_conv9")
    for path in ("manifest", "output"):
        assert not re.fullmatch(PARAMS[path]["regexes"][0], "/home/me/local.csv"), "workers cannot read local paths"
    assert re.fullmatch(PARAMS["output"]["regexes"][0], "gs://nst-bucket/runs/2026-01-31")


def test_only_output_is_required_and_the_pipeline_agrees(tmp_path):
    assert [n for n, p in PARAMS.items() if not p["isOptional"]] == ["output"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("content,style\ngs://b/c.jpg,gs://b/s.jpg\n")
    with pytest.raises(UsageError, match="--output"):
        resolve_options(PipelineOptions([f"--manifest={manifest}"]))
    # manifest/contents/styles are alternatives, each optional on its own: the pipeline checks the combination
    with pytest.raises(UsageError):
        resolve_options(PipelineOptions(["--output=gs://b/o"]))
    resolve_options(PipelineOptions([f"--manifest={manifest}", "--output=gs://b/o"]))
