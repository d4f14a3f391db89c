"""StyleOptions: every knob of the engine, its default, help text and validation, in one place.

The CLI flags (``nst-stylize``), the Beam pipeline options and the Dataflow Flex Template
parameters are all generated from :data:`SPECS`, so a knob added here appears everywhere.
Values arriving as strings (command line, manifest rows, template parameters) go through
:meth:`StyleOptions.from_dict`, which coerces and validates them and names the bad field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import ImageColor

from nst_core.errors import InputError

VGG_LAYERS: tuple[str, ...] = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
    "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4",
)
REFINE_LAYER = "block3_conv1"  # deepest layer of a shallow final scale
COARSE_REFERENCE_SIDE = 128  # coarse_steps are the steps of a coarse scale of this longest side
REFINE_REFERENCE_SIDE = 256  # a shallow final scale larger than this gets refine_steps_per_doubling more
REFINE_CONTENT_SIDE = 512  # a shallow final scale smaller than this gets less content weight
INIT_KINDS = ("content", "noise", "style")  # the starts that are not an image path
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _spec(default: Any, help: str, *, choices: tuple | None = None, lo: float | None = None,
          hi: float | None = None, scope: str = "pair", regex: str | None = None, **extra: Any):
    """A dataclass field carrying what the CLI, Beam options and Flex Template need to know."""
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi, "scope": scope, "regex": regex, **extra}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


# Fast-mode training defaults (nst_core.fast.TrainConfig, nst-train-style, the pipeline's --fast_* flags):
# the best held-out distances of the settings tried (benchmarks/RESULTS.md, Fast mode).
TRAIN_STEPS = 450
# The knobs that shape a style network's training losses (the rest configure the optimiser of a Gatys run).
TRAINING_FIELDS = ("content_weight", "style_weight", "tv_weight", "content_layer", "style_layers",
                   "style_layer_weights", "style_scale", "pooling", "precision", "weights", "seed", "size")
TRAIN_CROP = 128
TRAIN_STYLE_BOOST = 0.35


@dataclass(frozen=True)
class StyleOptions:
    """Options of one stylisation.  ``scope='engine'`` fields configure the model, not a pair; ``scope='output'``
    fields say how the image is written (they are run-wide, and not part of :meth:`stable_hash`)."""

    size: int = _spec(512, "longest side of the output image in pixels", lo=16, hi=4096)
    steps: int = _spec(12, "optimizer steps at the final (full-size) scale; a shallow final scale larger "
                       "than 256px gets refine_steps_per_doubling more", lo=0, hi=100000)
    refine_steps_per_doubling: float = _spec(10.0, "extra steps of a shallow final scale for each doubling of "
                                             "its side above 256px (with the defaults: 256px 12, 384px 18, "
                                             "512px 22), as a larger one has more detail to restore",
                                             lo=0.0, hi=1000.0)
    coarse_steps: int = _spec(15, "optimizer steps of a 128px coarse scale; a coarse scale of another size "
                              "gets coarse_steps * (128 / side) ** coarse_steps_power, so small, cheap scales "
                              "get more (with the defaults: 32px 30, 64px 22, 256px 11)", lo=0, hi=100000)
    coarse_steps_power: float = _spec(0.5, "how fast a coarse scale's steps grow as its side halves: "
                                      "coarse_steps * (128 / side) ** power (0: the same at every scale; 1: "
                                      "in inverse proportion to the side)", lo=0.0, hi=4.0)
    num_scales: int = _spec(4, "scales of the coarse-to-fine schedule, each twice the side of the one "
                            "before and ending at `size` (4: 64, 128, 256, 512 for a 512px output; 32 to "
                            "256 for a 256px one); 1 runs a single scale", lo=1, hi=8)
    min_size: int = _spec(32, "smallest longest side of a coarse scale: fewer scales are run rather "
                          "than one below this", lo=16, hi=4096)
    look_size: int = _spec(512, "longest side at which the look is set: a larger output first runs the "
                           "whole schedule of a look_size output (the large strokes form there), then "
                           "finer scales, each twice the side of the one before and ending at `size`, "
                           "that add detail; outputs up to look_size are unchanged", lo=16, hi=4096)
    detail_steps: int = _spec(6, "optimizer steps of each scale finer than look_size (shallow like the "
                              "final scale when refine is shallow)", lo=0, hi=100000)
    memory_budget: int = _spec(0, "memory in MB one pair may plan for (image-sized state, L-BFGS history and "
                               "one pass's activations; the runtime's ~0.9 GB comes on top); above it "
                               "scales are computed in tiles with the style loss kept global and exact, "
                               "and a size it can never serve is "
                               "rejected before work starts; 0: auto, 40 percent of the available RAM (of the "
                               "GPU's memory on a GPU)", lo=0, hi=10**7, scope="engine")
    refine: str = _spec("shallow", "final scale of a multi-scale run: shallow optimises only the style "
                        "layers up to block3_conv1 with the content loss on block3_conv1 (cheaper "
                        "steps: the coarse scales already laid out the large-scale style, the final "
                        "scale sharpens texture); full uses every configured layer",
                        choices=("shallow", "full"))
    upsample_detail: float = _spec(1.0, "when a finer scale starts, add this much of the content's detail "
                                   "that the coarser scale could not hold (the content minus its "
                                   "downsampled copy) to the upsampled image; 0: plain upsampling",
                                   lo=0.0, hi=1.0)
    refine_content_weight: float = _spec(0.22, "content weight at a shallow final scale of 512px or more "
                                         "(block3_conv1 features are larger than block4_conv2's, so less is "
                                         "needed)", lo=0.0, hi=1e6)
    refine_content_power: float = _spec(1.0, "a smaller shallow final scale gets refine_content_weight * "
                                        "(side / 512) ** power (with the defaults: 256px 0.11), as there the "
                                        "content is kept more easily than the style; 0: the same at every "
                                        "side", lo=0.0, hi=4.0)
    optimizer: str = _spec("lbfgs", "optimizer", choices=("lbfgs", "adam"))
    learning_rate: float = _spec(4.0, "Adam step size in pixel units (0..255 scale)", lo=1e-4, hi=255.0)
    init: str = _spec("content", "start image: content, noise, style, or a path to an image",
                      regex=r"^(content|noise|style|.+)$")
    content_weight: float = _spec(1.0, "weight of the content loss", lo=0.0, hi=1e6)
    style_weight: float = _spec(10.0, "weight of the style loss", lo=0.0, hi=1e6)
    tv_weight: float = _spec(1.0, "weight of the total-variation (smoothness) loss", lo=0.0, hi=1e6)
    content_layer: str = _spec("block4_conv2", "VGG19 layer of the content loss", choices=VGG_LAYERS)
    style_layers: tuple[str, ...] = _spec(DEFAULT_STYLE_LAYERS, "VGG19 layers of the style loss",
                                          choices=VGG_LAYERS)
    style_layer_weights: tuple[float, ...] = _spec((), "per-style-layer weights (comma list; empty: equal)",
                                                   lo=0.0, hi=1e6)
    style_blend: tuple[float, ...] = _spec((), "blend weights of several style images (comma list; "
                                           "empty: equal)", lo=0.0, hi=1e6)
    style_scale: float = _spec(1.0, "style image size relative to the output's pixel count", lo=0.05, hi=8.0)
    pooling: str = _spec("max", "VGG19 pooling", choices=("max", "avg"))
    preserve_colors: str = _spec("none", "keep the content's colours: none, luminance (transfer on "
                                 "luminance only) or histogram (match the style's colours to the "
                                 "content's first)", choices=("none", "luminance", "histogram"))
    mask_feather: float = _spec(1.5, "with a mask: the width in output pixels (Gaussian sigma) over which the "
                                "stylized part fades into the content just inside the mask's edge; pixels "
                                "the mask leaves black stay exactly the content; 0: a hard edge", lo=0.0, hi=64.0)
    mask_output: str = _spec("blend", "what a mask makes of the result: blend (the content where the mask is "
                             "black, a blend where grey) or alpha (the stylized image with the mask as its alpha "
                             "channel: a cut-out; times the content's own alpha if it has one)",
                             choices=("blend", "alpha"))
    background: str = _spec("white", "colour that transparent pixels are composited onto when the output "
                            "format has no alpha (JPEG): a CSS colour name or #rrggbb", regex=r"^.+$")
    seed: int = _spec(0, "random seed; the same seed gives the same image on the same machine",
                      lo=0, hi=2**31 - 1)
    precision: str = _spec("auto", "compute precision: auto picks mixed bfloat16 on CPUs with "
                           "AVX-512-BF16/AMX, mixed float16 on GPUs, float32 elsewhere",
                           choices=("auto", "float32", "bfloat16", "float16"), scope="engine")
    weights: str = _spec("auto", "VGG19 weights: auto (cache, $NST_WEIGHTS), imagenet (Keras download) "
                         "or a path to a .npz/.h5/codebook file", scope="engine")
    kernels: str = _spec("auto", "where a traced step holds VGG19's kernels: constant (in the graph, so oneDNN "
                         "keeps its reordered copy: coarse steps 2-3x faster, but each loss function's first "
                         "call takes a few seconds more and the process ~1.2 GB more), argument (passed in), or auto "
                         "(argument, then constant for a loss function that has run 100 steps in a Stylizer "
                         "serving many pairs on a CPU in bfloat16, such as a pipeline worker's; argument in "
                         "nst-stylize, for one pair, in float32, where constants are no faster, and on a GPU)",
                         choices=("auto", "constant", "argument"), scope="engine")

    image_format: str = _spec("png", "format of the output images: png (lossless, about 6 MB at 2048 px), jpeg "
                              "or webp (a tenth of that at the default quality); alpha is kept in png and webp",
                              choices=("png", "jpeg", "webp"), scope="output")
    image_quality: int = _spec(90, "quality of jpeg and webp output images, 1..100 (png is lossless)", lo=1, hi=100,
                               scope="output")

    def __post_init__(self) -> None:
        self.validate()

    # --- validation --------------------------------------------------------------------------
    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            items = value if isinstance(value, tuple) else (value,)
            for item in items:
                if isinstance(item, float) and not math.isfinite(item):
                    raise InputError(f"option {f.name}: {item} is not a finite number")
                if meta["choices"] and item not in meta["choices"]:
                    raise InputError(f"option {f.name}: {item!r} is not one of {', '.join(meta['choices'])}")
                if meta["lo"] is not None and isinstance(item, (int, float)) and item < meta["lo"]:
                    raise InputError(f"option {f.name}: {item} is below the minimum {meta['lo']}")
                if meta["hi"] is not None and isinstance(item, (int, float)) and item > meta["hi"]:
                    raise InputError(f"option {f.name}: {item} is above the maximum {meta['hi']}")
        if not self.style_layers:
            raise InputError("option style_layers: at least one layer is needed")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise InputError(f"option style_layer_weights: {len(self.style_layer_weights)} weights for "
                             f"{len(self.style_layers)} style layers")
        if not self.init:
            raise InputError("option init: empty")
        self.background_rgb()

    def background_rgb(self) -> tuple[int, int, int]:
        """``background`` as (r, g, b); InputError naming the option if it is no colour."""
        try:
            r, g, b = ImageColor.getrgb(self.background)[:3]
        except ValueError:
            raise InputError(f"option background: {self.background!r} is not a colour (a name such as white, "
                             "or #rrggbb)") from None
        return r, g, b

    @property
    def init_path(self) -> str | None:
        """The start image's path when ``init`` names one (not one of :data:`INIT_KINDS`), else None."""
        return None if self.init in INIT_KINDS else self.init

    # --- conversion --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: StyleOptions | None = None) -> StyleOptions:
        """Options from ``base`` (or defaults) overridden by ``data``; strings are coerced."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(f"unknown option(s): {', '.join(unknown)}")
        values = (base or cls()).to_dict()
        for name, raw in data.items():
            values[name] = _coerce(name, known[name].type, raw)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> StyleOptions:
        return self.from_dict(changes, base=self)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) != _default(f)}

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # a pickle holds only the changed fields: every pair in a run's shuffle carries its options
        return _options_from_changes, (self.changed(),)

    def pair_dict(self) -> dict[str, Any]:
        """The per-pair part: what decides the output image (engine-scope fields excluded)."""
        return {k: v for k, v in self.to_dict().items() if FIELD_SCOPES[k] == "pair"}

    def stable_hash(self) -> str:
        """Hash of the per-pair options: equal options give equal hashes across runs and machines.

        Fields of :data:`HASHED_IF_SET` count only when set to other than the behaviour before they existed,
        so outputs made then are still found done.
        """
        values = {k: v for k, v in self.pair_dict().items()
                  if k not in HASHED_IF_SET or v != _BEFORE_IT_EXISTED[k]}
        blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def scales(self) -> list[int]:
        """Longest sides of the coarse-to-fine schedule, ending at ``size``.

        Above ``look_size``: the scales of a ``look_size`` output, then detail scales doubling up to ``size``.
        """
        if self.size > self.look_size:
            fine = [self.size]
            while fine[-1] // 2 > self.look_size:
                fine.append(fine[-1] // 2)
            return [*self.replace(size=self.look_size).scales(), *fine[::-1]]
        sizes = [self.size]
        while len(sizes) < self.num_scales and sizes[-1] // 2 >= self.min_size:
            sizes.append(sizes[-1] // 2)
        return sizes[::-1]

    def schedule(self) -> list[tuple[int, int]]:
        """(longest side, steps) per scale: :meth:`coarse_steps_at` per coarse scale, then ``steps``.

        Tied to the scale's side rather than to its rank, so a scale of a given side gets the same
        steps in every output: small scales cost a fraction as much, and they are where the largest
        style features (block5's Gram) are laid out (benchmarks/RESULTS.md, Quality per second).  Scales above
        ``look_size`` get ``detail_steps`` each, so the look is that of the ``look_size`` output and
        the cost grows about linearly with the output's pixels (each scale costs 4x the one before).
        """
        return [(side, steps) for side, steps, _ in self.stages()]

    def stages(self) -> list[tuple[int, int, str]]:
        """(longest side, steps, stage) per scale; stage is full, refine (shallow) or detail (above look_size)."""
        sizes = self.scales()
        n_look = len(sizes) - sum(1 for s in sizes if s > self.look_size)
        look = sizes[:n_look]
        out = [(s, self.coarse_steps_at(s), "full") for s in look[:-1]]
        stage = "refine" if self.refine_options() is not None else "full"
        out.append((look[-1], self.refine_steps_at(look[-1]) if stage == "refine" else self.steps, stage))
        return [*out, *((s, self.detail_steps, "detail") for s in sizes[n_look:])]

    def coarse_steps_at(self, side: int) -> int:
        """Steps of a coarse (full-depth) scale of longest side ``side``."""
        # the epsilon keeps a whole product that pow() rounds up (60.000000001) from gaining a step
        return math.ceil(self.coarse_steps * (COARSE_REFERENCE_SIDE / side) ** self.coarse_steps_power - 1e-9)

    def refine_steps_at(self, side: int) -> int:
        """Steps of a shallow final scale of longest side ``side``."""
        return self.steps + round(self.refine_steps_per_doubling * math.log2(max(1.0, side / REFINE_REFERENCE_SIDE)))

    def refine_options(self) -> StyleOptions | None:
        """Options of a shallow final scale, or None when the final scale uses every layer."""
        side = min(self.size, self.look_size)  # the shallow final scale's; the detail scales share its weights
        if self.refine != "shallow" or len(self.replace(size=side).scales()) < 2:
            return None
        limit = VGG_LAYERS.index(REFINE_LAYER)
        keep = [i for i, name in enumerate(self.style_layers) if VGG_LAYERS.index(name) <= limit]
        if not keep or len(keep) == len(self.style_layers):
            return None
        weights = tuple(self.style_layer_weights[i] for i in keep) if self.style_layer_weights else ()
        return self.replace(style_layers=tuple(self.style_layers[i] for i in keep), style_layer_weights=weights,
                            content_layer=REFINE_LAYER, content_weight=self.refine_content_weight_at(side))

    def refine_content_weight_at(self, side: int) -> float:
        """Content weight of a shallow final scale of longest side ``side``."""
        return self.refine_content_weight * min(1.0, side / REFINE_CONTENT_SIDE) ** self.refine_content_power


def _coerce(name: str, typ: Any, raw: Any) -> Any:
    typ = str(typ)
    try:
        if typ.startswith("tuple"):
            if isinstance(raw, str):
                raw = [p.strip() for p in raw.split(",") if p.strip()]
            elem = float if "float" in typ else str
            return tuple(elem(x) for x in raw)
        if isinstance(raw, bool):
            raise ValueError("booleans are not numbers")
        if typ == "int":
            if isinstance(raw, float):
                if not raw.is_integer():
                    raise ValueError("not a whole number")
                return int(raw)
            if isinstance(raw, str):
                raw = raw.strip()
                f = float(raw)
                if not f.is_integer():
                    raise ValueError("not a whole number")
                return int(f)
            return int(raw)
        if typ == "float":
            return float(raw)
        if typ == "str":
            if not isinstance(raw, str):
                raise ValueError("expected text")
            return raw.strip()
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"option {name}: cannot read {raw!r} as {typ} ({e})") from None
    return raw


FIELDS = dataclasses.fields(StyleOptions)
HASHED_IF_SET = ("mask_feather", "mask_output", "background",  # added after catalogs had outputs (issue 18)
                 "coarse_steps_power", "refine_steps_per_doubling", "refine_content_power")  # issue 20
# The value each had before it existed: only other values enter the hash, so older outputs are still found done.
_BEFORE_IT_EXISTED = {"mask_feather": 1.5, "mask_output": "blend", "background": "white", "coarse_steps_power": 1.0,
                      "refine_steps_per_doubling": 0.0, "refine_content_power": 0.0}
FIELD_SCOPES = {f.name: f.metadata["scope"] for f in FIELDS}
PAIR_FIELDS = tuple(f.name for f in FIELDS if f.metadata["scope"] == "pair")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _options_from_changes(changes: dict[str, Any]) -> StyleOptions:
    return StyleOptions(**changes)


@dataclass(frozen=True)
class OptionSpec:
    """What a front end (argparse, Beam, Flex Template) needs to expose one option."""

    name: str
    type: str  # int | float | str | list
    default: Any
    help: str
    choices: tuple | None
    lo: float | None
    hi: float | None
    scope: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def regex(self) -> str:
        """A validation regex for the Flex Template parameter."""
        if self.choices and self.type != "list":
            return "^(" + "|".join(self.choices) + ")$"
        if self.type == "int":
            return r"^[0-9]+$"
        if self.type == "float":
            return r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$"
        if self.type == "list":
            item = "(" + "|".join(self.choices) + ")" if self.choices else r"[0-9]*\.?[0-9]+"
            return rf"^({item}(,{item})*)?$"
        return r"^.+$"

    def default_text(self) -> str:
        return ",".join(map(str, self.default)) if isinstance(self.default, tuple) else str(self.default)


def specs() -> list[OptionSpec]:
    defaults = StyleOptions()
    out = []
    for f in FIELDS:
        t = str(f.type)
        kind = "list" if t.startswith("tuple") else t
        out.append(OptionSpec(f.name, kind, getattr(defaults, f.name), f.metadata["help"], f.metadata["choices"],
                              f.metadata["lo"], f.metadata["hi"], f.metadata["scope"]))
    return out


def help_text(s: OptionSpec) -> str:
    """The help of one option with its valid values and default (argparse, Beam and the Flex Template)."""
    values = ""
    if s.choices:
        values = ("comma list of " if s.type == "list" else "one of ") + ", ".join(s.choices) + "; "
    return f"{s.help} ({values}default: {s.default_text()})".replace("%", "%%")  # argparse formats help with %


def add_arguments(parser, *, skip: tuple[str, ...] = (), defaults_none: bool = False) -> None:
    """Add one ``--flag`` per option to an argparse parser (Beam's PipelineOptions uses argparse too).

    With ``defaults_none`` every default is None, so the caller can tell which flags were given.
    Choices are listed in the help, not given to argparse: a bad value then gets the one-line
    ``option NAME: ...`` error of :meth:`StyleOptions.validate` like any other bad value.
    """
    for s in specs():
        if s.name in skip:
            continue
        default = None if defaults_none else (s.default_text() if s.type == "list" else s.default)
        # A short choice list reads best in the usage line too: --optimizer {lbfgs,adam}.
        metavar = "{" + ",".join(s.choices) + "}" if s.choices and s.type != "list" and len(s.choices) <= 4 else None
        parser.add_argument(s.flag, dest=s.name, type=str if s.type == "list" else
                            {"int": int, "float": float, "str": str}[s.type],
                            default=default, metavar=metavar, help=help_text(s))


_NEGATIVE_VALUE = re.compile(r"^-\.?[0-9]")


def join_negative_values(argv: Sequence[str], extra_flags: Sequence[str] = ()) -> list[str]:
    """``--style-blend -1,2`` as ``--style-blend=-1,2``, for every option flag (both spellings) and ``extra_flags``.

    argparse takes ``-1,2`` (not a plain negative number) for an option and says "expected one
    argument"; joined, the value reaches validation, which names the option and the bound.
    """
    flags = {*extra_flags, *(f for s in specs() for f in (s.flag, "--" + s.name))}
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in flags and _NEGATIVE_VALUE.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def from_namespace(ns: Any, base: StyleOptions | None = None) -> StyleOptions:
    """StyleOptions from an argparse namespace produced with :func:`add_arguments`."""
    given = {s.name: getattr(ns, s.name) for s in specs() if getattr(ns, s.name, None) is not None}
    return StyleOptions.from_dict(given, base=base)
