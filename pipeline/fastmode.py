"""Fast mode's steps (``--mode fast|auto``): one feed-forward style network per style, then a pass per pair.

Pairs are grouped by their (single) style; :func:`route_groups` sends a group fast (mode fast, or mode
auto with at least ``--fast_min_rows`` rows) or back to the optimize path.  :class:`StyleNetworkDoFn`
gets each fast group's network once: a file in ``--models`` whose style sha256 is the style file's,
else ``OUT/models/<name>.keras`` saved by an earlier run, else one trained now on a seeded sample
of the group's contents and saved there (atomically).  Pairs already done are skipped before
any of that, so a rerun trains nothing.  :class:`FastStylizeDoFn` loads each network once per worker
process and writes every pair like the optimize path (:class:`~pipeline.transforms.PairDoFn`).

A fast pair's fingerprint is its optimize fingerprint plus the mode and the network's name, so an
output of one mode (or of another network) is never taken as done for the other.  Rows of one
style with different loss options (size, weights, layers, seed) get a network each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from nst_core import InputError, StyleOptions, images
from nst_core.options import TRAIN_CROP, TRAIN_STEPS, TRAIN_STYLE_BOOST
from pipeline import storage
from pipeline.manifest import Pair
from pipeline.options import PIPELINE_CHOICES
from pipeline.resources import WorkerResources
from pipeline.transforms import NS, Inputs, PairDoFn, failure_reason

LOG = logging.getLogger("pipeline")
MODES = PIPELINE_CHOICES["mode"]
MODELS = "models"  # OUT/models/: the networks a run trained


@dataclass(frozen=True)
class FastConfig:
    """The fast-mode flags of a run."""

    mode: str = "optimize"
    models: str | None = None
    min_rows: int = 50
    steps: int = TRAIN_STEPS
    contents: int = 16
    crop: int = TRAIN_CROP
    style_boost: float = TRAIN_STYLE_BOOST
    train_size: int = StyleOptions().size  # the run's --size: a network is trained for it, whatever a row's size

    @classmethod
    def from_options(cls, opts: Any) -> FastConfig:
        """From NSTPipelineOptions; InputError naming the flag that is wrong."""
        cfg = cls(mode=opts.mode, models=opts.models, min_rows=opts.fast_min_rows, steps=opts.fast_train_steps,
                  contents=opts.fast_train_contents, crop=opts.fast_crop, style_boost=opts.fast_style_boost,
                  train_size=opts.style_options().size)
        if cfg.mode not in MODES:
            raise InputError(f"--mode {cfg.mode!r}: expected one of {', '.join(MODES)}")
        for flag, value in (("fast_min_rows", cfg.min_rows), ("fast_train_contents", cfg.contents)):
            if value is None or value < 1:
                raise InputError(f"--{flag} {value}: expected 1 or more")
        if cfg.mode == "optimize":
            if cfg.models:
                raise InputError("--models: only used with --mode fast or auto")
            return cfg
        from nst_core.fast import TrainConfig

        for flag, field in (("fast_train_steps", "steps"), ("fast_crop", "crop"), ("fast_style_boost", "style_boost")):
            try:
                TrainConfig(**{field: getattr(cfg, field)})
            except InputError as e:
                raise InputError(f"--{flag}: {e}") from None
        return cfg

    def train_config(self):
        from nst_core.fast import TrainConfig

        return TrainConfig(steps=self.steps, crop=self.crop, style_boost=self.style_boost)


# --- grouping ----------------------------------------------------------------------------------------
def key_by_style(pair: Pair) -> Iterator[Any]:
    """(style, pair) for a single-style pair; a blend of styles goes to the optimize path."""
    if len(pair.styles) == 1:
        yield pair.styles[0], pair
    else:
        yield beam.pvalue.TaggedOutput("optimize", pair)


def goes_fast(mode: str, rows: int, min_rows: int) -> bool:
    """Whether a single style's ``rows`` pairs go fast: always in mode fast, with >= min_rows in mode auto."""
    return mode == "fast" or (mode == "auto" and rows >= min_rows)


def route_groups(group: tuple[str, Iterable[Pair]], mode: str, min_rows: int) -> Iterator[Any]:
    """A style's pairs: fast as one group (:func:`goes_fast`), else each to optimize."""
    style, pairs = group
    pairs = sorted(pairs, key=lambda p: p.line)
    if goes_fast(mode, len(pairs), min_rows):
        yield style, pairs
    else:
        for pair in pairs:
            yield beam.pvalue.TaggedOutput("optimize", pair)


# --- network files -----------------------------------------------------------------------------------
def build_models_index(folder: str, local_file: Callable[[str], str]) -> dict[str, tuple[str, str]]:
    """style sha256 -> (network path, network name) of the style networks in ``folder`` (a worker builds it
    once, :meth:`WorkerResources.models_index`); files that are not style networks are logged and passed over."""
    from nst_core.fast import read_metadata

    index: dict[str, tuple[str, str]] = {}
    for path in storage.match(storage.join(folder, "*.keras")):
        try:
            meta = read_metadata(local_file(path))
        except (InputError, OSError) as e:
            if storage.is_transient(e):
                raise
            LOG.warning("--models: passing over %s (%s)", storage.redact(path), e)
            continue
        digest = hashlib.sha256(meta.pop("_style_bytes") + json.dumps(meta, sort_keys=True).encode())
        index.setdefault(meta["style"]["sha256"], (path, f"given-{digest.hexdigest()[:16]}"))
    return index


def network_name(style_sha: str, options: StyleOptions, cfg: FastConfig) -> str:
    """The file stem of the network a run trains for this style, options and training settings."""
    blob = json.dumps({"options": options.to_dict(), "steps": cfg.steps, "crop": cfg.crop,
                       "contents": cfg.contents, "style_boost": cfg.style_boost},
                      sort_keys=True)
    return f"{style_sha[:16]}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def fast_fingerprint(pair: Pair, network: str) -> str:
    return hashlib.sha256(f"{pair.fingerprint}|fast|{network}".encode()).hexdigest()


def as_fast(pairs: Iterable[Pair], network: str) -> list[Pair]:
    """The pairs with the fingerprints of outputs made by ``network``."""
    return [dataclasses.replace(p, fingerprint=fast_fingerprint(p, network)) for p in pairs]


def by_training_options(pairs: Iterable[Pair], cfg: FastConfig) -> dict[StyleOptions, list[Pair]]:
    """A style's pairs by what decides their network: the loss options, not the output size (a row's
    ``size`` only sets how large its network's output is; every network is trained for the run's --size)."""
    from nst_core import fast

    groups: dict[StyleOptions, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(fast.training_options(pair.options).replace(size=cfg.train_size), []).append(pair)
    return groups


def network_for(style_sha: str, options: StyleOptions, cfg: FastConfig, output: str,
                resources: WorkerResources) -> tuple[str, str, bool]:
    """(path, name, given) of the network for this style and these training options: one from --models
    whose style matches, else the one this run trains (or an earlier run trained) under OUT/models."""
    given = resources.models_index(cfg.models, build_models_index).get(style_sha) if cfg.models else None
    if given:
        return given[0], given[1], True
    name = network_name(style_sha, options, cfg)
    return storage.join(output, MODELS, f"{name}.keras"), name, False


# --- steps -------------------------------------------------------------------------------------------
class StyleNetworkDoFn(PairDoFn):
    """(style, pairs) -> (network path, pair) per pair to stylize; outcome records (tag ``outcomes``)
    for pairs already done and for every pending pair of a style whose network cannot be had."""

    def __init__(self, output: str, cfg: FastConfig, engine_options: StyleOptions, shared: Shared,
                 thumb_size: int = 160, *, require_gpu: bool = False):
        super().__init__(output, engine_options, shared, thumb_size, require_gpu=require_gpu)
        self.cfg = cfg
        self.trainings = Metrics.counter(NS, "network_trainings")

    def process(self, group: tuple[str, list[Pair]]) -> Iterator[Any]:
        from nst_core import fast

        style, pairs = group
        try:
            style_bytes = Inputs(self.resources()).get(style, "style", cached=True)
        except Exception as e:  # noqa: BLE001 - the style's rows fail, the run goes on
            reason = failure_reason(e, style)
            for pair in pairs:
                yield beam.pvalue.TaggedOutput("outcomes", self.failed_record(pair, reason, "train"))
            return
        sha = fast.style_sha256(style_bytes)
        for options, members in by_training_options(pairs, self.cfg).items():
            yield from self.one_network(style, style_bytes, sha, options, members)

    def one_network(self, style: str, style_bytes: bytes, sha: str, options: StyleOptions,
                    pairs: list[Pair]) -> Iterator[Any]:
        path, name, given = network_for(sha, options, self.cfg, self.output, self.resources())
        pending = []
        for pair in as_fast(pairs, name):
            stored = self.done_record(pair)
            if stored is None:
                pending.append(pair)
            else:
                yield beam.pvalue.TaggedOutput("outcomes", self.skipped_record(pair, stored))
        if not pending:
            return
        if not given and not storage.exists(path):
            try:
                self.train(style, style_bytes, options, pairs, name, path)
            except Exception as e:  # noqa: BLE001 - only this style's rows fail
                reason = f"style network for {style}: {failure_reason(e, style)}"
                for pair in pending:
                    yield beam.pvalue.TaggedOutput("outcomes", self.failed_record(pair, reason, "train"))
                return
        for pair in pending:
            yield path, pair

    def train(self, style: str, style_bytes: bytes, options: StyleOptions, pairs: list[Pair], name: str,
              path: str) -> None:
        """Train on a seeded sample of the pairs' contents (unreadable ones passed over) and save to ``path``."""
        from nst_core import fast

        self.resources().check_devices()
        images.load_image(style_bytes, style)  # a style that does not decode fails its rows before VGG19 loads
        contents = sorted({p.content for p in pairs})
        sample = random.Random(name).sample(contents, min(self.cfg.contents, len(contents)))
        arrays, names = [], []
        for c in sample:
            try:
                arrays.append(images.load_image(storage.read_bytes(c), c))
                names.append(c)
            except (InputError, OSError) as e:
                if storage.is_transient(e):
                    raise
                LOG.warning("training %s: passing over content %s (%s)", name, storage.redact(c), e)
        if not arrays:
            raise InputError(f"none of the {len(sample)} sampled content images could be read to train on")
        LOG.info("training style network %s for %s on %d content(s)", name, storage.redact(style), len(arrays))
        scorer = self.engine().model  # one VGG19 per process; training uses only its thread-safe parts
        model, _ = fast.train_style_network(style_bytes, arrays, options, self.cfg.train_config(),
                                            style_name=style, content_names=names, stylizer=scorer)
        self.trainings.inc()
        with tempfile.TemporaryDirectory(prefix="nst-train-") as tmp:
            local = fast.save_style_network(model, os.path.join(tmp, f"{name}.keras"))
            storage.write_atomic(path, local.read_bytes(), "application/zip")


class FastStylizeDoFn(PairDoFn):
    """(network path, pair) -> outcome record: stylized by one pass of the style's network, or error."""

    def __init__(self, output: str, engine_options: StyleOptions, shared: Shared, thumb_size: int = 160, *,
                 require_gpu: bool = False):
        super().__init__(output, engine_options, shared, thumb_size, require_gpu=require_gpu)
        self.loaded = Metrics.counter(NS, "networks_loaded")

    def process(self, item: tuple[str, Pair]) -> Iterator[dict[str, Any]]:
        path, pair = item
        yield self.attempt(pair, lambda inputs: self.stylize(path, pair, inputs))

    def stylize(self, path: str, pair: Pair, inputs: Inputs):
        from nst_core import fast

        content = inputs.get(pair.content, "content")
        mask = inputs.get(pair.mask, "mask") if pair.mask else None
        inputs.get(pair.styles[0], "style", cached=True)  # recorded: the network was trained on these bytes
        network = self.resources().network(path, on_load=self.loaded.inc)
        scorer = self.engine().model  # its VGG19 scores the pass (thread-safe parts only)
        with network.lock:
            result = fast.stylize_with_network(network.model, content, size=pair.options.size,
                                               content_name=pair.content, precision=pair.options.precision,
                                               weights=pair.options.weights, stylizer=scorer,
                                               mask=mask, mask_name=pair.mask,
                                               memory_budget=pair.options.memory_budget)
        result.network["path"] = storage.redact(path)
        return result
