"""NSTPipelineOptions: the single source of the pipeline's flags (CLI, DirectRunner, Dataflow, Flex Template).

The engine flags are generated from ``nst_core.options`` so a knob added to the engine appears here
too.  Every flag is registered under its Beam-style underscore name (``--content_weight``, what
``PipelineOptions.from_dictionary`` and Flex Template parameters produce) and the dashed alias
(``--content-weight``, what ``nst-stylize`` uses).  Engine flags default to None so the pipeline can
tell "given" from "default"; :meth:`NSTPipelineOptions.style_options` resolves them.
"""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from nst_core import StyleOptions
from nst_core import options as engine_options

# The pipeline's own flags: name -> (type, default, help).  Engine flags are appended from nst_core.
PIPELINE_FLAGS: dict[str, tuple[type, Any, str]] = {
    "manifest": (str, None, "manifest of pairs: CSV (header content,style[,id][,<option>...]) or JSON Lines "
                            "(.jsonl/.ndjson); local path or gs://; relative image paths resolve against it"),
    "contents": (str, None, "cross mode: glob of content images (local or gs://); use with --styles instead of "
                            "--manifest to stylize every content x style combination; repeat it to take the union "
                            "of several globs"),
    "styles": (str, None, "cross mode: glob of style images (local or gs://); use with --contents; repeatable"),
    "masks": (str, None, "cross mode: where each content's mask is (greyscale: white stylize, black keep the "
                         "content, grey blend), a path with {stem} (the content's file name without extension) or "
                         "{name} (with it), e.g. gs://b/masks/{stem}.png; a missing mask is that content's row "
                         "errors; a manifest names masks in its mask column instead"),
    "output": (str, None, "output folder (local path or gs://): images/, metrics/, metrics.jsonl, errors.jsonl, "
                          "report.html, summary.json"),
    "thumbnail_size": (int, 160, "longest side in pixels of the thumbnails (OUT/thumbs, OUT/sources) shown by "
                                 "report.html and its contact sheets; 0: no pictures"),
    "report_worst": (int, 24, "report.html shows this many pairs, with pictures, for each of: highest content "
                              "loss, highest style loss, slowest, retried"),
    "report_sheet_rows": (int, 200, "manifest lines per contact sheet (OUT/sheets/NNNN.html); the sheets "
                                    "together show every row"),
    "local_run_rows": (int, 10000, "a local run (DirectRunner) of more manifest lines than this goes in sub-runs "
                                   "of this many lines (rounded to whole contact sheets), then one merge, so its "
                                   "memory does not grow with the manifest (optimize mode; 0: one run)"),
    "progress_every": (float, 10.0, "seconds between the launcher's progress lines (stylized n/total, failures, "
                                    "rate, ETA); 0: none"),
    "mode": (str, "optimize", "optimize: every pair by optimisation (Gatys); fast: a feed-forward network per "
                              "style (trained on a sample of that style's contents, or taken from --models), "
                              "then one pass per pair; auto: fast for styles with at least --fast_min_rows rows, "
                              "optimize for the rest (blended styles always optimize)"),
    "models": (str, None, "folder (local or gs://) of trained .keras style networks (nst-train-style); one whose "
                          "style sha256 equals a style file's is used for that style instead of training"),
    "fast_min_rows": (int, 50, "auto mode: a style with at least this many rows goes fast"),
    "fast_train_steps": (int, engine_options.TRAIN_STEPS, "fast mode: training steps of a style network"),
    "fast_train_contents": (int, 16, "fast mode: contents of a style sampled (seeded) to train its network on"),
    "fast_crop": (int, engine_options.TRAIN_CROP, "fast mode: side of the training crops, a multiple of 4 in 16..2048"),
    "fast_style_boost": (float, engine_options.TRAIN_STYLE_BOOST,
                         "fast mode: training multiplies the style weight by this (a network trades content for "
                         "style differently from an optimised image of the same weights)"),
    "accelerator": (str, None, "Dataflow: the GPU of the stylizing steps alone, as a Beam resource hint "
                               "(e.g. type:nvidia-l4;count:1;install-nvidia-driver); the manifest, routing and "
                               "run-file steps then run on plain workers"),
    "require_gpu": (bool, False, "workers must see a GPU: one that sees none fails (with the devices and the "
                                 "driver it found) instead of stylizing at CPU speed on a GPU-priced VM; every GPU "
                                 "profile sets it, and a local run checks this machine before any work"),
    "prune": (bool, False, "move outputs under OUT/images and OUT/metrics that no row of this run claims (listed "
                           "in OUT/orphans.txt either way) to OUT/pruned/<time>/ instead of leaving them there"),
    "plan": (bool, False, "dry run: read the manifest and OUT, print what a run would stylize, skip, fail and "
                          "train, with a time estimate, and write nothing under OUT (Beam's --dry_run is not this)"),
    "plan_file": (str, None, "with --plan: JSON Lines file listing every row's planned outcome (default: a new "
                             "file in the system's temp folder)"),
}
# Flags that may be given several times (argparse 'append': a list of every value).
REPEATABLE = ("contents", "styles")
# Flags with a fixed set of values (checked by the pipeline, listed as a regex in the Flex Template metadata).
PIPELINE_CHOICES: dict[str, tuple[str, ...]] = {"mode": ("optimize", "fast", "auto")}


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


class _UnderscoreAliases:
    """Argparse proxy: registers ``--a_b`` (Beam/Flex spelling) next to every ``--a-b`` flag."""

    def __init__(self, parser: Any):
        self._parser = parser

    def add_argument(self, *flags: str, **kwargs: Any) -> Any:
        names: list[str] = []
        for flag in flags:
            if flag.startswith("--"):
                names += [flag.replace("-", "_").replace("__", "--", 1), flag]
            else:
                names.append(flag)
        return self._parser.add_argument(*dict.fromkeys(names), **kwargs)


class NSTPipelineOptions(PipelineOptions):
    """Options of the stylization batch job; view any PipelineOptions ``as`` this class."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_flags(parser)

    def style_options(self) -> StyleOptions:
        """The run's base StyleOptions: engine defaults overridden by the flags given (InputError if bad)."""
        return engine_options.from_namespace(self)


def add_flags(parser: Any, show_defaults: bool = False) -> None:
    """Register every flag (both spellings) on ``parser``; ``show_defaults`` adds the pipeline flags'
    defaults to their help, for --help (the engine flags' help says them already; the Flex metadata must not)."""
    group = _UnderscoreAliases(parser)
    for name, (typ, default, help_text) in PIPELINE_FLAGS.items():
        if show_defaults and default not in (None, False):
            help_text = f"{help_text} (default: {default})"
        flag = "--" + name.replace("_", "-")
        if typ is bool:  # --prune alone, or --prune=true|false as a Flex Template passes it
            group.add_argument(flag, dest=name, type=parse_bool, nargs="?", const=True, default=default,
                               help=help_text)
        elif name in REPEATABLE:
            group.add_argument(flag, dest=name, type=typ, action="append", default=default, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=typ, default=default, help=help_text)
    engine_options.add_arguments(group, defaults_none=True)


def flag_names() -> list[str]:
    """Every parameter of NSTPipelineOptions (dest names), for the Flex Template metadata and tests."""
    return list(PIPELINE_FLAGS) + [s.name for s in engine_options.specs()]
