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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nst_core import color, images, losses, optimize, tiling
from nst_core.errors import InputError, NumericalError
from nst_core.features import VGGFeatures, configure_devices, resolve_precision
from nst_core.options import VGG_LAYERS, StyleOptions
from nst_core.tfimport import tf
from nst_core.weights import Weights, load_weights

__version__ = "0.1.0"
STYLE_CACHE_ENTRIES = 256
BACK_PROJECTIONS = 2  # rounds of back-projection onto the look after each detail scale (1: +2 %, 2: +0.6 % style)
ProgressFn = Callable[[dict, np.ndarray], None]


def versions() -> dict[str, str]:
    import PIL

    return {"nst_core": __version__, "tensorflow": tf.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


@dataclass
class Result:
    """One stylised pair: the image, its final losses, a per-step trace and provenance."""

    image: np.ndarray  # HxWx3 uint8 RGB
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

    def metrics(self) -> dict[str, Any]:
        return {"content": self.content, "styles": self.styles, "losses": self.losses, "steps": self.steps,
                "seconds": round(self.seconds, 3), "size": list(self.image.shape[:2]),  # [height, width]
                "height": int(self.image.shape[0]), "width": int(self.image.shape[1]),
                "precision": self.precision, "options": self.options.to_dict(), "seed": self.options.seed,
                "versions": self.versions, "retried": self.retried, "trace": self.trace}

    def metrics_json(self) -> str:
        return json.dumps(self.metrics(), indent=1, sort_keys=True)

    def png_bytes(self) -> bytes:
        return images.encode_png(self.image, self.png_text())

    def png_text(self) -> dict[str, str]:
        """The provenance written into the PNG as text chunks (also used for the CLI's snapshots)."""
        return {"Software": f"nst_core {__version__}",
                "nst:options": json.dumps(self.options.to_dict(), sort_keys=True),
                "nst:seed": str(self.options.seed),
                "nst:precision": self.precision,
                "nst:losses": json.dumps(self.losses, sort_keys=True),
                "nst:content": self.content, "nst:styles": json.dumps(self.styles),
                "nst:versions": json.dumps(self.versions, sort_keys=True)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.png_bytes())
        return path

    def save_metrics(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.metrics_json())
        return path


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()


class Stylizer:
    """Serves many pairs with one model.  Not thread-safe: use one per worker thread/process."""

    def __init__(self, options: StyleOptions | None = None, weights: Weights | None = None):
        self.options = options or StyleOptions()
        configure_devices()
        self.precision = resolve_precision(self.options.precision)
        self._weights = weights if weights is not None else load_weights(self.options.weights)
        self._features: dict[tuple[str, str], VGGFeatures] = {}
        self._loss_fns: dict[tuple, Any] = {}
        self._style_cache: OrderedDict[tuple, tuple[tf.Tensor, ...]] = OrderedDict()
        self.style_cache_hits = 0
        self.style_cache_misses = 0

    # --- model pieces ------------------------------------------------------------------------
    def features(self, pooling: str, precision: str | None = None) -> VGGFeatures:
        key = (pooling, precision or self.precision)
        if key not in self._features:
            self._features[key] = VGGFeatures(self._weights, key[1], pooling)
        return self._features[key]

    def _loss_fn(self, opts: StyleOptions, precision: str, grad: bool = True):
        """A traced ``f(x, content_target, style_targets, layer_weights, weights)``.

        Returns ``(total, content, style, tv, grad)``, or without ``grad`` when ``grad=False``
        (used once per pair to report the final losses on the configured layers; not traced).
        """
        key = (opts.content_layer, opts.style_layers, opts.pooling, precision, grad)
        if key in self._loss_fns:
            return self._loss_fns[key]
        feats = self.features(opts.pooling, precision)
        content_layer, style_layers = opts.content_layer, opts.style_layers
        layers = tuple(sorted(set(style_layers) | {content_layer}, key=VGG_LAYERS.index))
        loss_scale = 1024.0 if precision == "float16" else 1.0
        signature = [
            tf.TensorSpec([1, None, None, 3], tf.float32),
            tf.TensorSpec([1, None, None, None], feats.dtype),
            tuple(tf.TensorSpec([None, None], tf.float32) for _ in style_layers),
            tf.TensorSpec([len(style_layers)], tf.float32),
            tf.TensorSpec([3], tf.float32),
        ]

        def parts(x, content_target, style_targets, layer_weights, weights):
            acts = feats(x, layers)
            c = losses.content_loss(acts[content_layer], content_target)
            s = tf.add_n([layer_weights[i] * losses.style_layer_loss(losses.gram(acts[name]), style_targets[i])
                          for i, name in enumerate(style_layers)])
            tv = losses.tv_loss(x)
            return weights[0] * c + weights[1] * s + weights[2] * tv, c, s, tv

        @tf.function(input_signature=signature, autograph=False)
        def loss_and_grad(x, content_target, style_targets, layer_weights, weights):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total, c, s, tv = parts(x, content_target, style_targets, layer_weights, weights)
                scaled = total * loss_scale
            return total, c, s, tv, tape.gradient(scaled, x) / loss_scale

        # The once-per-pair final evaluation runs eagerly: tracing it cost 0.6 s of every cold run,
        # eager costs ~0.03 s more per call (measured at 171x256).
        fn = loss_and_grad if grad else parts
        self._loss_fns[key] = fn
        return fn

    def _trace_ahead(self, option_sets: list[StyleOptions], precision: str) -> None:
        """Trace the loss functions this pair will need in a background thread.

        Tracing is Python work (~0.5 s per function on a 2-core CPU) and a step is TensorFlow
        work that releases the GIL, so the shallow final scale's function gets traced while the
        coarse scales run, and the first one while the first targets are computed.
        """
        fns = [self._loss_fn(o, precision) for o in option_sets]

        def trace() -> None:
            try:
                for f in fns:
                    f.get_concrete_function()
            except Exception:  # noqa: BLE001  the first real call traces again and reports it
                pass

        threading.Thread(target=trace, name="nst-trace-ahead", daemon=True).start()

    def _loss_only(self, opts: StyleOptions, precision: str):
        return self._loss_fn(opts, precision, grad=False)

    def _content_target(self, opts: StyleOptions, precision: str, content: np.ndarray) -> tf.Tensor:
        feats = self.features(opts.pooling, precision)
        return feats(tf.constant(content[None]), (opts.content_layer,))[opts.content_layer]

    def style_targets(self, opts: StyleOptions, precision: str, style: np.ndarray,
                      hw: tuple[int, int]) -> tuple[tf.Tensor, ...]:
        """Gram targets of one style image for an output of size ``hw``; cached (LRU)."""
        pixels = hw[0] * hw[1] * opts.style_scale
        sh, sw = style.shape[:2]
        k = (pixels / (sh * sw)) ** 0.5
        target_hw = (max(1, round(sh * k)), max(1, round(sw * k)))
        key = (_digest(style), target_hw, opts.style_layers, opts.pooling, precision)
        cached = self._style_cache.get(key)
        if cached is not None:
            self._style_cache.move_to_end(key)
            self.style_cache_hits += 1
            return cached
        self.style_cache_misses += 1
        resized = images.resize(style, target_hw)
        feats = self.features(opts.pooling, precision)
        deepest = max(opts.style_layers, key=VGG_LAYERS.index)
        tiles = tiling.plan(target_hw, deepest, tiling.TILE_PASS_CAP, feats.dtype.size, backward=False)
        if len(tiles) == 1:
            acts = feats(tf.constant(resized[None]), opts.style_layers)
            grams = tuple(losses.gram(acts[name]) for name in opts.style_layers)
        else:  # a style image at a 4096 px output's pixel count: its Grams summed over tiles
            grams = tuple(self._tiled(opts, precision, with_content=False).grams(resized, tiles)[0])
        self._style_cache[key] = grams
        while len(self._style_cache) > STYLE_CACHE_ENTRIES:
            self._style_cache.popitem(last=False)
        return grams

    # --- one pair ------------------------------------------------------------------------------
    def stylize(self, content: images.ImageLike, style: images.ImageLike | Sequence[images.ImageLike],
                options: StyleOptions | None = None, *, progress: ProgressFn | None = None,
                content_name: str | None = None, style_names: Sequence[str] | None = None,
                init_image: images.ImageLike | None = None) -> Result:
        """Stylise one pair; retries once in float32 with Adam if the loss turns NaN/Inf.

        ``init_image`` (decoded bytes, array, PIL image) stands in for reading ``options.init`` as a
        local path, for callers that fetch it themselves (the pipeline reads gs:// objects).
        """
        opts = options or self.options
        t0 = time.perf_counter()
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise InputError("style: at least one style image is needed")
        style_names = list(style_names or [images.describe(s) for s in styles])
        content_name = content_name or images.describe(content)
        content_arr = images.load_image(content, content_name)
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
            image, parts, trace = self._run(opts, self.precision, content_arr, style_arrs, blend, progress, init_arr,
                                            content_name)
        except NumericalError as first:
            retried = f"{first}; retried in float32 with Adam"
            safe = opts.replace(optimizer="adam", learning_rate=min(opts.learning_rate, 2.0))
            try:
                image, parts, trace = self._run(safe, "float32", content_arr, style_arrs, blend, progress,
                                                init_arr, content_name)
            except NumericalError as second:
                raise NumericalError(f"{content_name}: {first}; the float32 retry failed too: {second}") from None
        return Result(image=images.to_uint8(image), losses=parts, steps=len(trace),
                      seconds=time.perf_counter() - t0, trace=trace, options=opts, precision=self.precision
                      if not retried else "float32", content=content_name, styles=style_names, retried=retried)

    def _run(self, opts: StyleOptions, precision: str, content: np.ndarray, styles: list[np.ndarray],
             blend: list[float], progress: ProgressFn | None, init_arr: np.ndarray | None = None,
             name: str = "content"):
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
        # A size the budget can never serve is rejected before any work (the pipeline makes it the row's error).
        self._plan(stage_opts[stages[-1][2]], precision, final_hw, budget, name)
        self._trace_ahead([opts] + ([refine] if refine is not None else []), precision)
        curvature: optimize.Curvature = []
        prev_stage = ""
        look = np.zeros((1, 1, 3), np.float32)  # the look_size result, which the detail scales keep
        for idx, (longest, steps, stage) in enumerate(stages):
            o = stage_opts[stage]
            hw = images.fit_size(content.shape[:2], longest)
            c_img = images.resize(work_content, hw)
            tiles = self._plan(o, precision, hw, budget, name)
            history, memory_dtype = tiling.lbfgs_memory(hw, opts.look_size)
            if x is None:
                x = self._init(opts, c_img, styles[0], init_arr, hw, rng)
            else:
                # Curvature carries over between scales of the same objective (coarse to coarse, detail to detail).
                same = stage == "detail" or (stage == "full" and prev_stage == "full")
                curvature = _carry_curvature(curvature[-history:], x.shape[:2], hw) if same else []
                x = _upsample(x, c_img, opts.upsample_detail)
            prev_stage = stage
            if steps == 0:
                if stage == "detail":
                    x = _back_project(x, look)
                else:
                    look = x
                continue
            objective = self._objective(o, precision, c_img, styles, blend_w, hw, tiles)
            del c_img  # the objective holds its features; one image less during the steps

            def on_step(p: dict, arr: np.ndarray, _scale=idx, _hw=hw, _stage=stage, _tiles=len(tiles)) -> None:
                entry = {"step": len(trace) + 1, "scale": _scale, "height": _hw[0], "width": _hw[1],
                         "stage": _stage, "tiles": _tiles, "seconds": round(time.perf_counter() - t_start, 4), **p}
                trace.append(entry)
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
            else:
                look = x
        curvature = []
        if x is None or x.shape[:2] != final_hw:
            x = images.resize(x if x is not None else work_content, final_hw)
        # Final losses always on the configured layers (a shallow refine optimised a subset); above
        # look_size on the output resized to the look size, where the look is set and the losses compare.
        eval_hw = images.fit_size(content.shape[:2], min(opts.size, opts.look_size))
        c_img = images.resize(work_content, eval_hw)
        x_eval = images.resize(x, eval_hw)
        tiles = self._plan(opts, precision, eval_hw, budget, name, backward=False)
        if len(tiles) == 1:
            loss_fn, c_target, s_targets, lw, wts = self._problem(opts, precision, c_img, styles, blend_w, eval_hw)
            total, c, s, tv = self._loss_only(opts, precision)(tf.constant(x_eval[None]), c_target, s_targets, lw,
                                                                wts)
        else:
            tv_ = self._tiled(opts, precision)
            total, c, s, tv, _ = tv_.loss(x_eval, tiles, tv_.content_features(c_img, tiles),
                                          self._blended_targets(opts, precision, styles, blend_w, eval_hw),
                                          *self._loss_weights(opts), grad=False)
        parts = {"content": float(c), "style": float(s), "tv": float(tv), "total": float(total)}
        if not np.isfinite(parts["total"]):
            raise NumericalError(f"final loss is {parts['total']}")
        if luminance_only:
            x = color.recombine(x, images.resize(content, final_hw))
        return x, parts, trace

    def _plan(self, o: StyleOptions, precision: str, hw: tuple[int, int], budget: int, name: str,
              backward: bool = True) -> list[tiling.Tile]:
        deepest = max((*o.style_layers, o.content_layer), key=VGG_LAYERS.index)
        return tiling.plan_scale(hw, deepest, o.content_layer, budget, self.features(o.pooling, precision).dtype.size,
                                 backward, name, o.look_size)

    def _tiled(self, o: StyleOptions, precision: str, with_content: bool = True) -> tiling.TiledVGG:
        content_layer = o.content_layer if with_content else None
        key = ("tiled", o.style_layers, content_layer, o.pooling, precision)
        if key not in self._loss_fns:
            self._loss_fns[key] = tiling.TiledVGG(self.features(o.pooling, precision), o.style_layers,
                                                  content_layer, 1024.0 if precision == "float16" else 1.0)
        return self._loss_fns[key]

    def _objective(self, o: StyleOptions, precision: str, c_img: np.ndarray, styles: list[np.ndarray],
                   blend_w: np.ndarray, hw: tuple[int, int], tiles: list[tiling.Tile]) -> optimize.Objective:
        """``f(x) -> (total, parts, grad)`` at one scale: one traced call untiled, two tile passes when tiled."""
        if len(tiles) == 1:
            loss_fn, c_target, s_targets, lw, wts = self._problem(o, precision, c_img, styles, blend_w, hw)

            def objective(arr: np.ndarray):
                total, c, s, tv, g = loss_fn(tf.constant(arr[None]), c_target, s_targets, lw, wts)
                p = {"content": float(c), "style": float(s), "tv": float(tv), "total": float(total)}
                return p["total"], p, g.numpy()[0]

            return objective
        tv_ = self._tiled(o, precision)
        c_feats = tv_.content_features(c_img, tiles)
        s_targets = self._blended_targets(o, precision, styles, blend_w, hw)
        lw_np, wts_np = self._loss_weights(o)

        def tiled_objective(arr: np.ndarray):
            total, c, s, tv, g = tv_.loss(arr, tiles, c_feats, s_targets, lw_np, wts_np)
            p = {"content": c, "style": s, "tv": tv, "total": total}
            return total, p, g

        return tiled_objective

    @staticmethod
    def _loss_weights(opts: StyleOptions) -> tuple[np.ndarray, np.ndarray]:
        lw = np.array(opts.style_layer_weights or [1.0] * len(opts.style_layers), np.float32)
        return lw / lw.sum(), np.array([opts.content_weight, opts.style_weight, opts.tv_weight], np.float32)

    def _blended_targets(self, opts: StyleOptions, precision: str, styles: list[np.ndarray], blend_w: np.ndarray,
                         hw: tuple[int, int]) -> tuple[tf.Tensor, ...]:
        per_style = [self.style_targets(opts, precision, s, hw) for s in styles]
        return tuple(tf.add_n([float(b) * t[i] for b, t in zip(blend_w, per_style)])
                     for i in range(len(opts.style_layers)))

    def _problem(self, opts: StyleOptions, precision: str, c_img: np.ndarray, styles: list[np.ndarray],
                 blend_w: np.ndarray, hw: tuple[int, int]):
        """Loss function and its constant inputs (content target, blended Gram targets, weights)."""
        c_target = self._content_target(opts, precision, c_img)
        s_targets = self._blended_targets(opts, precision, styles, blend_w, hw)
        lw, wts = self._loss_weights(opts)
        return self._loss_fn(opts, precision), c_target, s_targets, tf.constant(lw), tf.constant(wts)

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


def _upsample(x: np.ndarray, content: np.ndarray, detail: float) -> np.ndarray:
    """``x`` resized to ``content``'s size, plus ``detail`` times the content's finer band.

    An upsampled image is blurred: at 512px the astronaut's content distance was 0.791 right
    after the 256px scale was upsampled, and 15 shallow steps got it only to 0.648.  The band the
    coarser scale could not represent (content minus its down-and-up-sampled copy) is the best
    guess for it; with it the start is 0.586 and the result 0.562, with style 0.231.
    """
    hw = content.shape[:2]
    up = images.resize(x, hw)
    if detail <= 0:
        return up
    band = content - images.resize_field(images.resize_field(content, x.shape[:2]), hw)
    return np.clip(up + detail * band, 0, 255).astype(np.float32)


def _back_project(x: np.ndarray, look: np.ndarray) -> np.ndarray:
    """``x`` corrected so that, resized to the look's size, it is the look (iterative back-projection).

    A detail scale adds what the look_size grid cannot hold; what it can hold stays as set there.
    Without this, resampling alone moved the look: the 512 px result upsampled to 1024 and
    resized back scored style 0.274 against 0.241, and a 2048 px output 0.280; after
    BACK_PROJECTIONS rounds, 0.242 (benchmarks/RESULTS.md).
    """
    for _ in range(BACK_PROJECTIONS):
        x = np.clip(x + images.resize_field(look - images.resize_field(x, look.shape[:2]), x.shape[:2]), 0, 255)
    return x.astype(np.float32)


def _carry_curvature(curvature: optimize.Curvature, old_hw: tuple[int, int],
                     new_hw: tuple[int, int]) -> optimize.Curvature:
    """The previous scale's L-BFGS memory, resized to the next scale (same objective, finer grid).

    Steps resize as images; gradients also shrink by the area ratio, because the losses are
    per-pixel means, so each pixel of a 2x finer grid carries a quarter of the gradient.
    Measured at 256 px: the first steps of the 128 px scale then descend at once instead of
    rising for two steps.  (Not carried into a shallow final scale: its objective differs.)
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
    return Stylizer(opts).stylize(content, style, opts, progress=progress)
