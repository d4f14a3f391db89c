#!/usr/bin/env python3
"""Generate deploy/metadata.json, the Flex Template's parameter list, from the pipeline's options class.

    python deploy/make_metadata.py           # rewrite deploy/metadata.json
    python deploy/make_metadata.py --check   # exit 1 if the committed file differs from what this makes

Nothing here is a hand-kept list of flags: the parameters are read from
``pipeline.options.add_flags``, which NSTPipelineOptions registers (every argparse action it adds),
their help text from the same place, and the validation regexes of the engine flags from
``nst_core.options.specs()``.  The only deploy-level decisions are which flags a Dataflow run must
be given (:data:`REQUIRED`) and that paths must be ``gs://`` on Dataflow (:data:`PATH_PARAMS`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METADATA = HERE / "metadata.json"
TEMPLATE_NAME = "nst-catalog-stylize"
TEMPLATE_DESCRIPTION = (
    "Catalog-scale neural style transfer (Gatys et al., VGG19, TensorFlow) on GPU workers: reads a manifest of "
    "(content, style) pairs or the cross product of two gs:// globs, writes stylised PNGs, metrics.jsonl, "
    "errors.jsonl, report.html and summary.json under the output prefix. Rerunning with the same output prefix "
    "resumes: pairs already written are skipped.")

# Flags a Dataflow run cannot do without (the pipeline rejects a run without them before any worker starts).
REQUIRED = ("output",)
_BUCKET = r"gs://[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]"
# On Dataflow every path is read or written by workers, so it must be on Cloud Storage.
PATH_PARAMS = {
    "manifest": (rf"^{_BUCKET}/.+$", "GCS_READ_FILE"),
    "contents": (rf"^{_BUCKET}/.+$", "TEXT"),  # a glob, not one file
    "styles": (rf"^{_BUCKET}/.+$", "TEXT"),
    "masks": (rf"^{_BUCKET}/.+$", "TEXT"),  # a pattern with {stem} or {name}, not one file
    "output": (rf"^{_BUCKET}(/.*)?$", "GCS_WRITE_FOLDER"),
    "models": (rf"^{_BUCKET}(/.*)?$", "GCS_READ_FOLDER"),
}
# Free-text pipeline flags with a shape Dataflow can check before it launches.
TEXT_PATTERNS = {"accelerator": r"^type:[a-z0-9-]+;count:[1-9][0-9]*(;[a-z0-9_-]+)*$"}
# Flags of a local run only: a plan is printed by the launcher, which on Dataflow nobody reads.
LOCAL_ONLY = ("plan", "plan_file", "local_run_rows")
_TYPE_REGEX = {int: r"^[0-9]+$", float: r"^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$"}


class _Recorder:
    """An argparse parser that keeps the actions ``add_argument`` returns (argparse's public API)."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(add_help=False)
        self.actions: list[argparse.Action] = []

    def add_argument(self, *flags: str, **kwargs) -> argparse.Action:
        action = self.parser.add_argument(*flags, **kwargs)
        self.actions.append(action)
        return action


def pipeline_actions() -> list[argparse.Action]:
    """The argparse actions NSTPipelineOptions registers (pipeline.options.add_flags), in registration order."""
    from pipeline.options import add_flags

    recorder = _Recorder()
    add_flags(recorder)
    return recorder.actions


def param_name(action: argparse.Action) -> str:
    """The spelling the Flex launcher passes (``--name=value``): the underscore form, as Beam spells options."""
    names = [s[2:] for s in action.option_strings if s.startswith("--")]
    for name in names:
        if name == action.dest:
            return name
    underscore = [n for n in names if "-" not in n]
    if underscore:
        return underscore[0]
    raise ValueError(f"{action.option_strings}: no --{action.dest} spelling, the Flex launcher could not pass it")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def parameter(action: argparse.Action, engine_specs: dict, choices: dict | None = None) -> dict:
    name = param_name(action)
    entry = {
        "name": name,
        "label": _label(name),
        "helpText": " ".join((action.help or name).split()),
        "isOptional": name not in REQUIRED,
    }
    if name in PATH_PARAMS:
        regex, kind = PATH_PARAMS[name]
        entry["regexes"] = [regex]
        entry["paramType"] = kind
    elif name in TEXT_PATTERNS:
        entry["regexes"] = [TEXT_PATTERNS[name]]
    elif action.dest in engine_specs:
        entry["regexes"] = [engine_specs[action.dest].regex()]
    elif action.choices or (choices or {}).get(action.dest):
        entry["regexes"] = ["^(" + "|".join(map(str, action.choices or choices[action.dest])) + ")$"]
    elif action.type in _TYPE_REGEX:
        entry["regexes"] = [_TYPE_REGEX[action.type]]
    elif getattr(action.type, "__name__", "") == "parse_bool":
        entry["regexes"] = ["^(true|false)$"]
    return entry


def build_metadata() -> dict:
    from nst_core.options import specs
    from pipeline.options import PIPELINE_CHOICES

    engine_specs = {s.name: s for s in specs()}
    params = [parameter(a, engine_specs, PIPELINE_CHOICES) for a in pipeline_actions()
              if a.dest not in LOCAL_ONLY]
    names = [p["name"] for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"parameters registered twice: {dupes}")
    return {
        "name": TEMPLATE_NAME,
        "description": TEMPLATE_DESCRIPTION,
        "streaming": False,
        "parameters": params,
    }


def render(metadata: dict) -> str:
    return json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="fail if deploy/metadata.json is not up to date")
    args = p.parse_args(argv)
    text = render(build_metadata())
    if args.check:
        if not METADATA.is_file() or METADATA.read_text() != text:
            print("deploy/metadata.json is out of date: run `python deploy/make_metadata.py`", file=sys.stderr)
            return 1
        print("deploy/metadata.json is up to date")
        return 0
    METADATA.write_text(text)
    print(f"wrote {METADATA.relative_to(ROOT)} ({len(json.loads(text)['parameters'])} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
