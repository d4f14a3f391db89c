"""Stylizer: VGG19 built once, style targets cached, ``stylize()`` runs one pair.

The data path of one pair::

    decode images -> (colour handling) -> for each scale of the coarse-to-fine schedule:
        resize content, look up / compute style Grams, upsample the previous result,
        optimise (L-BFGS or Adam) -> Result (image, losses, trace, provenance)
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nst_core import __version__, color, images, losses, masks, optimize, tiling
from nst_core.cache import LoadOnce
from nst_core.errors import InputError, NumericalError
from nst_core.features import VGGFeatures, configure_devices, resolve_precision
from nst_core.options import VGG_LAYERS, StyleOptions
from nst_core.tfimport import tf
from nst_core.weights import Weights, load_weights

# Style Gram targets kept per Stylizer: ~2.4 MB per style and size with the default layers, so ~50 of them;
# small beside a GPU's memory even with several worker processes on it under MPS.
GRAM_CACHE_BYTES = 128 * 1024 * 1024
CONSTANT_KERNELS_AFTER = 100  # steps of a loss function before kernels='auto' holds its kernels as constants
BACK_PROJECTIONS = 2  # rounds onto the look after each detail scale (benchmarks/RESULTS.md, High resolution)
ProgressFn = Callable[[dict, np.ndarray], None]
Targets = tuple[tf.Tensor, tuple[tf.Tensor, ...]]  # an objective's content target and Gram targets
Job = tuple[StyleOptions, tuple[int, int], list[tiling.Tile] | None]  # an objective's options, size and tiles


def versions() -> dict[str, str]:
    import PIL

    return {"nst_core": __version__, "tensorflow": tf.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


@dataclass
class Result:
    """One stylised pair: the image, its final losses, a per-step trace and provenance."""

    image: np.ndarray  # HxWx3 uint8 RGB, or HxWx4 RGBA when the content had alpha
    losses: dict[str, float]  # content, style, tv, total (weighted total)
    steps: int
    seconds: float
    trace: list[dict[str, float]]
    options: StyleOptions
    precision: str
    content: str = ""
    styles: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=versions)
    retried: str = ""
    mask: str = ""  # the mask's name, when one was given
    region: float = 1.0  # the mean loss weight: the stylized share of the image (alpha x mask)
    flattened_onto: str = ""  # set by image_for(keeps_alpha=False): the colour the alpha was composited onto

    @property
    def has_alpha(self) -> bool:
        return self.image.ndim == 3 and self.image.shape[2] == 4

    def image_for(self, keeps_alpha: bool) -> np.ndarray:
        """The array to encode: as is for a format that keeps alpha; for one that does not (JPEG), RGB
        composited onto ``options.background``, which the metrics then record."""
        if keeps_alpha or not self.has_alpha:
            return self.image
        rgb = self.options.background_rgb()
        self.flattened_onto = "#{:02x}{:02x}{:02x}".format(*rgb)
        return images.to_uint8(masks.onto_background(self.image, rgb))

    def metrics(self) -> dict[str, Any]:
        alpha = ("composited onto " + self.flattened_onto) if self.flattened_onto else \
            ("kept" if self.has_alpha else "none")
        return {"content": self.content, "styles": self.styles, "losses": self.losses, "steps": self.steps,
                "mask": self.mask or None, "alpha": alpha, "region": round(self.region, 6),
                "seconds": round(self.seconds, 3), "size": list(self.image.shape[:2]),  # [height, width]
                "height": int(self.image.shape[0]), "width": int(self.image.shape[1]),
                "precision": self.precision, "options": self.options.to_dict(), "seed": self.options.seed,
                "versions": self.versions, "retried": self.retried, "trace": self.trace}

    def metrics_json(self) -> str:
        return json.dumps(self.metrics(), indent=1, sort_keys=True)

    def png_bytes(self) -> bytes:
        return self.encode("png")

    def encode(self, fmt: str | None = None, quality: int | None = None) -> bytes:
        """The image as ``fmt`` (default: the options' image_format) with its provenance (:meth:`png_text`);
        JPEG gets the alpha composited onto the background (:meth:`image_for`), so encode before the metrics."""
        fmt = fmt or self.options.image_format
        return images.encode(self.image_for(keeps_alpha=fmt != "jpeg"), fmt,
                             quality or self.options.image_quality, self.png_text())

    def png_text(self) -> dict[str, str]:
        """The provenance: PNG text chunks, or XMP in JPEG and WebP (also used for the CLI's snapshots)."""
        return {"Software": f"nst_core {__version__}",
                "nst:options": json.dumps(self.options.to_dict(), sort_keys=True),
                "nst:seed": str(self.options.seed),
                "nst:precision": self.precision,
                "nst:losses": json.dumps(self.losses, sort_keys=True),
                "nst:content": self.content, "nst:styles": json.dumps(self.styles),
                "nst:versions": json.dumps(self.versions, sort_keys=True)}

    def save(self, path: str | Path) -> Path:
        """Write the image in the format its extension names (.png, .jpg/.jpeg, .webp)."""
        path = Path(path)
        path.write_bytes(self.encode(images.format_for_path(path)))
        return path

    def save_metrics(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.metrics_json())
        return path


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _grams_nbytes(grams: tuple[tf.Tensor, ...]) -> int:
    return sum(g.shape.num_elements() * g.dtype.size for g in grams)


class Stylizer:
    """Serves many pairs with one model (VGG19 features, traced losses, the style Gram targets, bounded in
    bytes by ``gram_cache_bytes``).  ``features()`` and ``style_targets()`` may be called from any thread
    (fast mode scores with them); ``stylize()`` is not thread-safe: serialize it."""

    def __init__(self, options: StyleOptions | None = None, weights: Weights | None = None, *,
                 gram_cache_bytes: int = GRAM_CACHE_BYTES, one_pair: bool = False):
        self.options = options or StyleOptions()
        gpus = configure_devices()
        self.precision = resolve_precision(self.options.precision)
        # Graph-constant kernels repay their slower first call only over many steps, and only where oneDNN's kernel
        # reorders are a large part of a step: bfloat16 on a CPU (in float32 they ran no faster; on GPUs, unmeasured).
        auto = "argument" if one_pair or gpus or self.precision == "float32" else "auto"
        self.kernels = auto if self.options.kernels == "auto" else self.options.kernels
        self._steps_run: Counter[tuple] = Counter()  # optimizer steps per loss function, for kernels='auto'
        self._steps_before: Counter[tuple] = Counter()  # ... before this pair: a pair never switches midway
        self._weights = weights if weights is not None else load_weights(self.options.weights)
        self._features: LoadOnce[VGGFeatures] = LoadOnce()
        self._loss_fns: dict[tuple, Any] = {}
        self._ahead: ThreadPoolExecutor | None = None  # the next scale's targets, made during this scale's steps
        self.style_cache: LoadOnce[tuple[tf.Tensor, ...]] = LoadOnce(max_bytes=gram_cache_bytes, size=_grams_nbytes)

    @property
    def style_cache_hits(self) -> int:
        return self.style_cache.hits

    @property
    def style_cache_misses(self) -> int:
        return self.style_cache.loads

    # --- model pieces ------------------------------------------------------------------------
    def features(self, pooling: str, precision: str | None = None) -> VGGFeatures:
        key = (pooling, precision or self.precision)
        return self._features.get(key, lambda: VGGFeatures(self._weights, key[1], pooling))

    def _loss_fn(self, opts: StyleOptions, precision: str, grad: bool = True, masked: bool = False):
        """A traced ``f(x, content_target, style_targets, layer_weights, weights)``.

        Returns ``(total, content, style, tv, grad)``, or without ``grad`` when ``grad=False``
        (used once per pair to report the final losses on the configured layers; not traced).
        """
        fn_key = self._fn_key(opts, precision, masked)
        constant = grad and self._constant_kernels(fn_key)
        key = (*fn_key, grad, constant)
        if key in self._loss_fns:
            return self._loss_fns[key]
        feats = self.features(opts.pooling, precision)
        content_layer, style_layers = opts.content_layer, opts.style_layers
        layers = losses.feature_layers(opts)
        loss_scale = losses.loss_scale(precision)
        signature = [
            tf.TensorSpec([1, None, None, 3], tf.float32),
            tf.TensorSpec([1, None, None, None], feats.dtype),
            tuple(tf.TensorSpec([None, None], tf.float32) for _ in style_layers),
            tf.TensorSpec([len(style_layers)], tf.float32),
            tf.TensorSpec([3], tf.float32),
        ]
        if masked:  # per layer of `layers`, the weight of each position (nst_core.masks.layer_weights)
            signature.append(tuple(tf.TensorSpec([1, None, None, 1], tf.float32) for _ in layers))

        def parts(x, content_target, style_targets, layer_weights, weights, region=None):
            acts = feats(x, layers, constant)
            if region is None:
                c = losses.content_loss(acts[content_layer], content_target)
                grams = [losses.gram(acts[name]) for name in style_layers]
            else:
                w = dict(zip(layers, region))
                c = losses.masked_content_loss(acts[content_layer], content_target, w[content_layer])
                grams = [losses.masked_gram(acts[name], w[name]) for name in style_layers]
            s = tf.add_n([layer_weights[i] * losses.style_layer_loss(grams[i], style_targets[i])
                          for i in range(len(style_layers))])
            tv = losses.tv_loss(x)
            return weights[0] * c + weights[1] * s + weights[2] * tv, c, s, tv

        @tf.function(input_signature=signature, autograph=False)
        def loss_and_grad(x, content_target, style_targets, layer_weights, weights, *region):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total, c, s, tv = parts(x, content_target, style_targets, layer_weights, weights,
                                        region[0] if region else None)
                scaled = total * loss_scale
            return total, c, s, tv, tape.gradient(scaled, x) / loss_scale

        # The once-per-pair final evaluation runs eagerly: its trace cost more than eager calls save
        # (benchmarks/RESULTS.md, Engine vs peer, Previous defaults).
        fn = loss_and_grad if grad else parts
        self._loss_fns[key] = fn
        return fn

    @staticmethod
    def _fn_key(opts: StyleOptions, precision: str, masked: bool) -> tuple:
        return opts.content_layer, opts.style_layers, opts.pooling, precision, masked

    def _constant_kernels(self, fn_key: tuple) -> bool:
        """Whether a loss function traced now holds the kernels as graph constants: with kernels='auto', once the
        function has run enough steps to repay its slower first call (benchmarks/RESULTS.md, Quality per second)."""
        ran = self._steps_before[fn_key]
        return self.kernels == "constant" or (self.kernels == "auto" and ran >= CONSTANT_KERNELS_AFTER)

    def _trace_ahead(self, option_sets: list[StyleOptions], precision: str, masked: bool = False) -> None:
        """Trace the loss functions this pair will need in a background thread.

        Tracing is Python work and a step is TensorFlow work that releases the GIL, so the shallow
        final scale's function gets traced while the coarse scales run, and the first one while the
        first targets are computed (benchmarks/RESULTS.md, Engine vs peer: cold-run overheads).
        """
        fns = [self._loss_fn(o, precision, masked=masked) for o in option_sets]

        def trace() -> None:
            try:
                for f in fns:
                    f.get_concrete_function()
            except Exception:  # noqa: BLE001  the first real call traces again and reports it
                pass

        threading.Thread(target=trace, name="nst-trace-ahead", daemon=True).start()

    def _loss_only(self, opts: StyleOptions, precision: str, masked: bool = False):
        return self._loss_fn(opts, precision, grad=False, masked=masked)

    def _content_target(self, opts: StyleOptions, precision: str, content: np.ndarray) -> tf.Tensor:
        feats = self.features(opts.pooling, precision)
        return feats(tf.constant(content[None]), (opts.content_layer,))[opts.content_layer]

    def style_targets(self, opts: StyleOptions, precision: str, style: np.ndarray, hw: tuple[int, int],
                      superset: StyleOptions | None = None) -> tuple[tf.Tensor, ...]:
        """Gram targets of one style image for an output of size ``hw``; cached (LRU bounded in bytes).

        ``superset``: options whose style layers include these (see :meth:`_shares_passes`); these Grams are
        then picked from its, made (and cached) with one forward pass of the style image for both."""
        target_hw = losses.style_hw(style.shape[:2], hw, opts.style_scale)
        key = (_digest(style), target_hw, opts.style_layers, opts.pooling, precision)

        def load() -> tuple[tf.Tensor, ...]:
            if superset is None:
                return self._style_grams(opts, precision, style, target_hw)
            grams = self.style_targets(superset, precision, style, hw)
            return tuple(grams[superset.style_layers.index(name)] for name in opts.style_layers)

        return self.style_cache.get(key, load)

    def _style_grams(self, opts: StyleOptions, precision: str, style: np.ndarray,
                     target_hw: tuple[int, int]) -> tuple[tf.Tensor, ...]:
        resized = images.resize(style, target_hw)
        feats = self.features(opts.pooling, precision)
        deepest = max(opts.style_layers, key=VGG_LAYERS.index)
        tiles = tiling.plan(target_hw, deepest, tiling.TILE_PASS_CAP, feats.dtype.size, backward=False)
        if len(tiles) == 1:
            acts = feats(tf.constant(resized[None]), opts.style_layers)
            grams = tuple(losses.gram(acts[name]) for name in opts.style_layers)
        else:  # a style image at a 4096 px output's pixel count: its Grams summed over tiles
            grams = tuple(self._tiled(opts, precision, with_content=False).grams(resized, tiles)[0])
        return grams

    # --- one pair ------------------------------------------------------------------------------
    def stylize(self, content: images.ImageLike, style: images.ImageLike | Sequence[images.ImageLike],
                options: StyleOptions | None = None, *, progress: ProgressFn | None = None,
                content_name: str | None = None, style_names: Sequence[str] | None = None,
                init_image: images.ImageLike | None = None, mask: images.ImageLike | None = None,
                mask_name: str | None = None) -> Result:
        """Stylise one pair; retries once in float32 with Adam if the loss turns NaN/Inf.

        ``init_image`` (decoded bytes, array, PIL image) stands in for reading ``options.init`` as a
        local path, for callers that fetch it themselves (the pipeline reads gs:// objects).
        A content with alpha is stylized where it is not transparent and comes back RGBA with its alpha;
        ``mask`` (greyscale, any size: white stylize, black keep the content, grey blend) limits the
        losses and the result to its region (:mod:`nst_core.masks`).
        """
        opts = options or self.options
        t0 = time.perf_counter()
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise InputError("style: at least one style image is needed")
        style_names = list(style_names or [images.describe(s) for s in styles])
        content_name = content_name or images.describe(content)
        content_arr, alpha = images.load_rgba(content, content_name)
        mask_name = mask_name or (images.describe(mask) if mask is not None else "")
        region = masks.build_region(alpha, None if mask is None else
                                    masks.load_mask(mask, f"mask {mask_name}", content_arr.shape[:2]),
                                    content_name, opts.mask_feather, opts.mask_output == "alpha")
        work_arr = content_arr if region is None or region.alpha is None else masks.bleed(content_arr, region.alpha)
        style_arrs = [images.load_image(s, n) for s, n in zip(styles, style_names)]
        init_arr = None
        if opts.init_path:
            init_arr = images.load_image(init_image if init_image is not None else opts.init_path,
                                         f"init image {opts.init_path}")
        blend = list(opts.style_blend) or [1.0] * len(style_arrs)
        if len(blend) != len(style_arrs):
            raise InputError(f"option style_blend: {len(blend)} weights for {len(style_arrs)} style images")
        if sum(blend) <= 0:
            raise InputError("option style_blend: the weights add up to zero")
        retried = ""
        try:
            image, parts, trace = self._run(opts, self.precision, work_arr, style_arrs, blend, progress, init_arr,
                                            content_name, region)
        except NumericalError as first:
            retried = f"{first}; retried in float32 with Adam"
            safe = opts.replace(optimizer="adam", learning_rate=min(opts.learning_rate, 2.0))
            try:
                image, parts, trace = self._run(safe, "float32", work_arr, style_arrs, blend, progress,
                                                init_arr, content_name, region)
            except NumericalError as second:
                raise NumericalError(f"{content_name}: {first}; the float32 retry failed too: {second}") from None
        if region is not None:
            image = masks.composite(image, content_arr, region, image.shape[:2])
        image = masks.with_opaque_alpha(image, alpha)
        return Result(image=images.to_uint8(image), losses=parts, steps=len(trace),
                      seconds=time.perf_counter() - t0, trace=trace, options=opts, precision=self.precision
                      if not retried else "float32", content=content_name, styles=style_names, retried=retried,
                      mask=mask_name, region=region.fraction() if region is not None else 1.0)

    def _run(self, opts: StyleOptions, precision: str, content: np.ndarray, styles: list[np.ndarray],
             blend: list[float], progress: ProgressFn | None, init_arr: np.ndarray | None = None,
             name: str = "content", region: masks.Region | None = None):
        luminance_only = opts.preserve_colors == "luminance"
        if opts.preserve_colors == "histogram":
            styles = [color.match_colors(s, content) for s in styles]
        elif luminance_only:
            styles = [color.match_luminance(s, content) for s in styles]
        work_content = color.luminance(content) if luminance_only else content
        final_hw = images.fit_size(content.shape[:2], opts.size)
        rng = np.random.default_rng(opts.seed)
        blend_w = np.array(blend, np.float64) / sum(blend)
        trace: list[dict[str, float]] = []
        t_start = time.perf_counter()
        x: np.ndarray | None = None
        stages = opts.stages()
        refine = opts.refine_options()
        stage_opts = {"full": opts, "refine": refine or opts, "detail": refine or opts}
        budget = tiling.budget_bytes(opts.memory_budget)
        self._steps_before = self._steps_run.copy()
        # A size the budget can never serve is rejected before any work (the pipeline makes it the row's error).
        self._plan(stage_opts[stages[-1][2]], precision, final_hw, budget, name)
        self._trace_ahead([opts] + ([refine] if refine is not None else []), precision, masked=region is not None)
        curvature: optimize.Curvature = []
        prev_stage = ""
        look = np.zeros((1, 1, 3), np.float32)  # the look_size result, which the detail scales keep
        eval_hw = images.fit_size(content.shape[:2], min(opts.size, opts.look_size))
        # What the objective of each later scale needs, and the final evaluation: (options, size, tiles).
        later = [(stage_opts[stage], images.fit_size(content.shape[:2], longest), None)
                 for longest, steps, stage in stages if steps > 0]
        later.append((opts, eval_hw, self._plan(opts, precision, eval_hw, budget, name, backward=False)))
        ahead: Future | None = None
        shared: Future | None = None  # the targets of the objective after the next, made with the next one's
        for idx, (longest, steps, stage) in enumerate(stages):
            o = stage_opts[stage]
            hw = images.fit_size(content.shape[:2], longest)
            c_img = images.resize(work_content, hw)
            tiles = self._plan(o, precision, hw, budget, name)
            history, memory_dtype = tiling.lbfgs_memory(hw, opts.look_size)
            weight = region.weight_at(hw) if region is not None else None
            keep = None if weight is None else weight == 0  # pixels outside the region: held at the content
            if x is None:
                x = self._init(opts, c_img, styles[0], init_arr, hw, rng)
            else:
                # Curvature carries over between scales of the same objective (coarse to coarse, detail to detail).
                same = stage == "detail" or (stage == "full" and prev_stage == "full")
                curvature = _carry_curvature(curvature[-history:], x.shape[:2], hw) if same else []
                if keep is not None:
                    curvature = [(np.where(keep[..., None], 0, a), np.where(keep[..., None], 0, b))
                                 for a, b in curvature]
                x = _upsample(x, c_img, opts.upsample_detail)
            x = _hold(x, c_img, keep)
            prev_stage = stage
            if steps == 0:
                if stage == "detail":
                    x = _hold(_back_project(x, look), c_img, keep)
                else:
                    look = x
                continue
            objective = self._objective(o, precision, c_img, styles, blend_w, hw, tiles, weight,
                                        targets=ahead if len(tiles) == 1 else None)
            later.pop(0)
            ahead = None
            held = c_img if keep is not None else None
            del c_img  # the objective holds its features; one image less during the steps

            planned_mb = self._peak(o, precision, hw, tiles) // tiling.MB
            first_step = len(trace) + 1

            def on_step(p: dict, arr: np.ndarray, _scale=idx, _hw=hw, _stage=stage, _tiles=len(tiles),
                        _mb=planned_mb, _first=first_step) -> None:
                nonlocal ahead, shared
                entry = {"step": len(trace) + 1, "scale": _scale, "height": _hw[0], "width": _hw[1],
                         "stage": _stage, "tiles": _tiles, "planned_mb": _mb,
                         "seconds": round(time.perf_counter() - t_start, 4), **p}
                trace.append(entry)
                if ahead is None and entry["step"] == _first:  # not sooner: the first step's tracing wants the GIL
                    if shared is not None:
                        ahead, shared = shared, None
                    else:
                        ahead, shared = self._targets_ahead(later[:2], precision, work_content, styles, blend_w,
                                                            budget, name, room=budget - _mb * tiling.MB)
                if progress is not None:
                    progress(entry, arr)

            if o.optimizer == "lbfgs":
                x, _ = optimize.lbfgs(x, objective, steps, on_step, history=history, curvature=curvature,
                                      dtype=memory_dtype)
            else:
                x, _ = optimize.adam(x, objective, steps, o.learning_rate, on_step)
            del objective  # its content features are image-sized
            if stage == "detail":
                x = _back_project(x, look)
            x = _hold(x, held, keep)
            if stage != "detail":
                look = x
            del held
        curvature = []
        if x is None or x.shape[:2] != final_hw:
            x = images.resize(x if x is not None else work_content, final_hw)
        # Final losses always on the configured layers (a shallow refine optimised a subset); above
        # look_size on the output resized to the look size, where the look is set and the losses compare.
        c_img = images.resize(work_content, eval_hw)
        x_eval = images.resize(x, eval_hw)
        tiles = later[-1][2]
        levels = _levels(region.weight_at(eval_hw)) if region is not None else None
        if len(tiles) == 1:
            loss_fn, c_target, s_targets, lw, wts = self._problem(opts, precision, c_img, styles, blend_w, eval_hw,
                                                                  targets=ahead)
            extra = [_region_args(opts, levels)] if levels is not None else []
            total, c, s, tv = self._loss_only(opts, precision, levels is not None)(
                tf.constant(x_eval[None]), c_target, s_targets, lw, wts, *extra)
        else:
            tv_ = self._tiled(opts, precision, masked=levels is not None)
            total, c, s, tv, _ = tv_.loss(x_eval, tiles, tv_.content_features(c_img, tiles),
                                          self._blended_targets(opts, precision, styles, blend_w, eval_hw),
                                          *self._loss_weights(opts), grad=False, region=levels)
        parts = {"content": float(c), "style": float(s), "tv": float(tv), "total": float(total)}
        if not np.isfinite(parts["total"]):
            raise NumericalError(f"final loss is {parts['total']}")
        if luminance_only:
            x = color.recombine(x, images.resize(content, final_hw))
        return x, parts, trace

    def _plan(self, o: StyleOptions, precision: str, hw: tuple[int, int], budget: int, name: str,
              backward: bool = True) -> list[tiling.Tile]:
        deepest = losses.feature_layers(o)[-1]
        return tiling.plan_scale(hw, deepest, o.content_layer, budget, self.features(o.pooling, precision).dtype.size,
                                 backward, name, o.look_size)

    def _peak(self, o: StyleOptions, precision: str, hw: tuple[int, int], tiles: list[tiling.Tile]) -> int:
        """The planner's estimate of the peak RSS of one scale (runtime included), in bytes."""
        deepest = losses.feature_layers(o)[-1]
        return tiling.peak_bytes(hw, tiles, deepest, o.content_layer, self.features(o.pooling, precision).dtype.size,
                                 look_size=o.look_size, constant_kernels=self.kernels != "argument")

    def _tiled(self, o: StyleOptions, precision: str, with_content: bool = True,
               masked: bool = False) -> tiling.TiledVGG:
        content_layer = o.content_layer if with_content else None
        key = ("tiled", o.style_layers, content_layer, o.pooling, precision, masked)
        if key not in self._loss_fns:
            self._loss_fns[key] = tiling.TiledVGG(self.features(o.pooling, precision), o.style_layers,
                                                  content_layer, losses.loss_scale(precision), masked=masked)
        return self._loss_fns[key]

    def _objective(self, o: StyleOptions, precision: str, c_img: np.ndarray, styles: list[np.ndarray],
                   blend_w: np.ndarray, hw: tuple[int, int], tiles: list[tiling.Tile],
                   weight: np.ndarray | None = None, targets: Future | None = None) -> optimize.Objective:
        """``f(x) -> (total, parts, grad)`` at one scale: one traced call untiled, two tile passes when tiled.

        With a region ``weight`` (HxW, 0..1) the losses count each position by it, and the gradient is
        zero where it is 0: those pixels stay as they start (the content).
        """
        levels = _levels(weight) if weight is not None else None
        frozen = weight == 0 if weight is not None and not weight.all() else None
        if len(tiles) == 1:
            loss_fn, c_target, s_targets, lw, wts = self._problem(o, precision, c_img, styles, blend_w, hw,
                                                                  masked=levels is not None, targets=targets)
            extra = [_region_args(o, levels)] if levels is not None else []
            fn_key = self._fn_key(o, precision, levels is not None)

            def objective(arr: np.ndarray):
                total, c, s, tv, g = loss_fn(tf.constant(arr[None]), c_target, s_targets, lw, wts, *extra)
                self._steps_run[fn_key] += 1
                p = {"content": float(c), "style": float(s), "tv": float(tv), "total": float(total)}
                return p["total"], p, _zero(g.numpy()[0], frozen)

            return objective
        tv_ = self._tiled(o, precision, masked=levels is not None)
        c_feats = tv_.content_features(c_img, tiles)
        s_targets = self._blended_targets(o, precision, styles, blend_w, hw)
        lw_np, wts_np = self._loss_weights(o)

        def tiled_objective(arr: np.ndarray):
            total, c, s, tv, g = tv_.loss(arr, tiles, c_feats, s_targets, lw_np, wts_np, region=levels)
            p = {"content": c, "style": s, "tv": tv, "total": total}
            return total, p, _zero(g, frozen)

        return tiled_objective

    @staticmethod
    def _loss_weights(opts: StyleOptions) -> tuple[np.ndarray, np.ndarray]:
        weights = np.array([opts.content_weight, opts.style_weight, opts.tv_weight], np.float32)
        return losses.layer_weights(opts), weights

    def _blended_targets(self, opts: StyleOptions, precision: str, styles: list[np.ndarray], blend_w: np.ndarray,
                         hw: tuple[int, int], superset: StyleOptions | None = None) -> tuple[tf.Tensor, ...]:
        per_style = [self.style_targets(opts, precision, s, hw, superset) for s in styles]
        return tuple(tf.add_n([float(b) * t[i] for b, t in zip(blend_w, per_style)])
                     for i in range(len(opts.style_layers)))

    def _problem(self, opts: StyleOptions, precision: str, c_img: np.ndarray, styles: list[np.ndarray],
                 blend_w: np.ndarray, hw: tuple[int, int], masked: bool = False, targets: Future | None = None):
        """Loss function and its constant inputs (content target, blended Gram targets, weights); ``masked``:
        the function takes the region's weights (:func:`_region_args`) as one more argument; ``targets``: the
        two targets, already being made (:meth:`_targets_ahead`)."""
        c_target, s_targets = targets.result() if targets is not None else self._targets(
            opts, precision, c_img, styles, blend_w, hw)
        lw, wts = self._loss_weights(opts)
        return self._loss_fn(opts, precision, masked=masked), c_target, s_targets, tf.constant(lw), tf.constant(wts)

    def _targets(self, opts: StyleOptions, precision: str, c_img: np.ndarray, styles: list[np.ndarray],
                 blend_w: np.ndarray, hw: tuple[int, int]) -> Targets:
        return (self._content_target(opts, precision, c_img),
                self._blended_targets(opts, precision, styles, blend_w, hw))

    def _targets_ahead(self, jobs: list[Job], precision: str, content: np.ndarray, styles: list[np.ndarray],
                       blend_w: np.ndarray, budget: int, name: str, room: int) -> tuple[Future | None, Future | None]:
        """Start making the content and Gram targets of the next objective (a later scale, or the final
        evaluation) in a background thread, to overlap with this scale's steps: the coarse steps leave the
        cores part idle (benchmarks/RESULTS.md, Quality per second).  None where that objective is tiled, or
        where its forward passes would not fit in ``room`` (the budget less this scale's planned peak).

        Where the objective after it reads a superset of its layers at the same size (the final evaluation
        after a shallow final scale), the second future holds that one's targets, made by the same forward
        passes (benchmarks/RESULTS.md, Quality per second: shared targets)."""
        o, hw, tiles = jobs[0]
        if len(tiles if tiles is not None else self._plan(o, precision, hw, budget, name)) != 1:
            return None, None
        dtype_bytes = self.features(o.pooling, precision).dtype.size

        def fits(*opts: StyleOptions) -> bool:
            deepest = max((losses.feature_layers(x)[-1] for x in opts), key=VGG_LAYERS.index)
            return tiling.pass_bytes(hw, deepest, dtype_bytes, backward=False) * max(1.0, o.style_scale) <= room

        if not fits(o):
            return None, None
        if self._ahead is None:
            self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-targets")
        then = jobs[1][0] if len(jobs) > 1 and self._shares_passes(jobs[0], jobs[1], precision, budget, name) else None
        if then is None or not fits(o, then):
            return self._ahead.submit(
                lambda: self._targets(o, precision, images.resize(content, hw), styles, blend_w, hw)), None
        first, second = Future(), Future()

        def both() -> None:
            try:
                a, b = self._shared_targets(o, then, precision, images.resize(content, hw), styles, blend_w, hw)
            except BaseException as e:  # noqa: BLE001  each objective's first call re-raises it
                first.set_exception(e)
                second.set_exception(e)
                return
            first.set_result(a)
            second.set_result(b)

        self._ahead.submit(both)
        return first, second

    def _shares_passes(self, job: Job, then: Job, precision: str, budget: int, name: str) -> bool:
        """Whether ``then``'s targets come from ``job``'s forward passes taken deeper: the same size, pooling and
        style image size, untiled, and every style layer of ``job`` among ``then``'s."""
        (o, hw, _), (t, t_hw, t_tiles) = job, then
        return (hw == t_hw and o.pooling == t.pooling and o.style_scale == t.style_scale
                and set(o.style_layers) <= set(t.style_layers)
                and len(t_tiles if t_tiles is not None else self._plan(t, precision, t_hw, budget, name)) == 1)

    def _shared_targets(self, o: StyleOptions, then: StyleOptions, precision: str, c_img: np.ndarray,
                        styles: list[np.ndarray], blend_w: np.ndarray, hw: tuple[int, int]) -> tuple[Targets, Targets]:
        """The targets of ``o`` and of ``then`` (see :meth:`_shares_passes`), one forward pass per image."""
        feats = self.features(o.pooling, precision)
        layers = tuple(sorted({o.content_layer, then.content_layer}, key=VGG_LAYERS.index))
        acts = feats(tf.constant(c_img[None]), layers)
        then_grams = self._blended_targets(then, precision, styles, blend_w, hw)
        grams = self._blended_targets(o, precision, styles, blend_w, hw, superset=then)
        return (acts[o.content_layer], grams), (acts[then.content_layer], then_grams)

    @staticmethod
    def _init(opts: StyleOptions, content: np.ndarray, style: np.ndarray, init_arr: np.ndarray | None,
              hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        if opts.init == "content":
            return content.copy()
        if opts.init == "noise":
            return np.clip(128.0 + 40.0 * rng.standard_normal((*hw, 3)), 0, 255).astype(np.float32)
        if opts.init == "style":
            return images.resize(style, hw)
        assert init_arr is not None  # loaded (and validated) in stylize()
        return images.resize(init_arr, hw)


def _levels(weight: np.ndarray) -> list[np.ndarray]:
    """A region's weight on the grid of every pooling level VGG19 has (block1 .. block5)."""
    return masks.layer_weights(weight, tiling.level(VGG_LAYERS[-1]))


def _region_args(opts: StyleOptions, levels: list[np.ndarray]) -> tuple[tf.Tensor, ...]:
    """The masked loss function's last argument: per layer of :func:`losses.feature_layers`, its level's weights."""
    return tuple(tf.constant(levels[tiling.level(name)][None, ..., None]) for name in losses.feature_layers(opts))


def _zero(g: np.ndarray, frozen: np.ndarray | None) -> np.ndarray:
    if frozen is not None:
        g = g if g.flags.writeable else g.copy()
        g[frozen] = 0.0
    return g


def _hold(x: np.ndarray, content: np.ndarray | None, keep: np.ndarray | None) -> np.ndarray:
    """``x`` with the pixels outside the region (``keep``) set back to the content."""
    if keep is None or content is None or not keep.any():
        return x
    return np.where(keep[..., None], content, x).astype(np.float32)


def _upsample(x: np.ndarray, content: np.ndarray, detail: float) -> np.ndarray:
    """``x`` resized to ``content``'s size, plus ``detail`` times the content's finer band.

    An upsampled image is blurred, and the band the coarser scale could not represent (content minus
    its down-and-up-sampled copy) is the best guess for what is missing (benchmarks/RESULTS.md, Engine
    vs peer: detail-restoring upsampling).
    """
    hw = content.shape[:2]
    up = images.resize(x, hw)
    if detail <= 0:
        return up
    band = content - images.resize_field(images.resize_field(content, x.shape[:2]), hw)
    return np.clip(up + detail * band, 0, 255).astype(np.float32)


def _back_project(x: np.ndarray, look: np.ndarray) -> np.ndarray:
    """``x`` corrected so that, resized to the look's size, it is the look (iterative back-projection).

    A detail scale adds what the look_size grid cannot hold; what it can hold stays as set there, as
    resampling alone would move it (benchmarks/RESULTS.md, High resolution: how the look stays).
    """
    for _ in range(BACK_PROJECTIONS):
        x = np.clip(x + images.resize_field(look - images.resize_field(x, look.shape[:2]), x.shape[:2]), 0, 255)
    return x.astype(np.float32)


def _carry_curvature(curvature: optimize.Curvature, old_hw: tuple[int, int],
                     new_hw: tuple[int, int]) -> optimize.Curvature:
    """The previous scale's L-BFGS memory, resized to the next scale (same objective, finer grid).

    Steps resize as images; gradients also shrink by the area ratio, because the losses are
    per-pixel means, so each pixel of a 2x finer grid carries a quarter of the gradient; the first
    steps of a scale then descend at once (benchmarks/RESULTS.md, Engine vs peer, Previous defaults).
    Not carried into a shallow final scale: its objective differs.
    """
    area = (old_hw[0] * old_hw[1]) / (new_hw[0] * new_hw[1])
    return [(images.resize_field(s, new_hw), images.resize_field(y, new_hw) * area) for s, y in curvature]


def stylize(content: images.ImageLike, style: images.ImageLike | Sequence[images.ImageLike],
            **options: Any) -> Result:
    """One pair, one call: ``stylize('cat.jpg', 'starry.jpg', size=256)``.

    Builds a throwaway :class:`Stylizer`; to serve many pairs, build one and reuse it.
    """
    progress = options.pop("progress", None)
    opts = StyleOptions.from_dict(options)
    return Stylizer(opts, one_pair=True).stylize(content, style, opts, progress=progress)
