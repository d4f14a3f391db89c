"""Fast mode: a feed-forward style network (Johnson et al. 2016) trained with the engine's Gatys losses.

One network per style.  Training optimises the network's weights, not an image: random crops of
content photos go through the network, and its outputs are scored by the same VGG19 features
(:class:`~nst_core.features.VGGFeatures`, mixed bf16/fp16 where the engine picks it) and the same
losses (:mod:`nst_core.losses`) as an optimised stylisation.  Afterwards one forward pass
stylises an image of any size in a fraction of a second.

Network: reflect-padded convs with instance norm, two stride-2 downsamplings, residual blocks,
nearest-neighbour upsampling followed by a conv (no transposed convs: no checkerboard), and
``255 * sigmoid(...)`` output made from the features alone (Johnson et al.).  With ``skip`` the
output layer instead adds its result to the logit of the input and starts at zero (an untrained
network is the identity); off by default, as it carried its training photos' colour shift onto
contents of another palette (benchmarks/RESULTS.md, Fast mode).

Files are ordinary ``.keras`` zips with two extra entries: ``nst_fast.json`` (format marker and
version, style name and sha256, options, architecture, training figures and loss trace) and the
style image's bytes (so a stylisation can report its losses against the style's Grams).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nst_core import images, losses, masks, tiling
from nst_core.errors import InputError, NumericalError
from nst_core.features import VGGFeatures, resolve_precision
from nst_core.options import TRAIN_CROP, TRAIN_STEPS, TRAIN_STYLE_BOOST, TRAINING_FIELDS, StyleOptions
from nst_core.stylizer import Result, Stylizer, _back_project, versions
from nst_core.tfimport import keras, tf
from nst_core.weights import Weights

FORMAT = "nst-fast-style"
FORMAT_VERSION = 1
META_ENTRY = "nst_fast.json"
STYLE_ENTRY = "nst_style"  # + the style file's suffix
MIN_SIDE = 16  # the network sees at least this many pixels per side (edge-padded, then cropped back)
MULTIPLE = 4  # two stride-2 downsamplings: sides are padded to a multiple of 4
TraceFn = Callable[[dict], None]

LOSS_FIELDS = TRAINING_FIELDS


# --- network -----------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="nst_fast")
class ReflectPad2D(keras.layers.Layer):
    """Reflection padding of ``pad`` pixels on each side of H and W."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="nst_fast")
class InstanceNorm(keras.layers.Layer):
    """Per-image, per-channel normalisation with a learned scale and offset (Ulyanov et al.)."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, shape):
        c = shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros")

    def call(self, x):
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="nst_fast")
class InputLogit(keras.layers.Layer):
    """logit(x / 255), clipped, so ``255 * sigmoid(InputLogit(x) + 0)`` gives back ``x``."""

    def __init__(self, eps: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.eps = float(eps)

    def call(self, x):
        p = tf.clip_by_value(x / 255.0, self.eps, 1.0 - self.eps)
        return tf.math.log(p) - tf.math.log1p(-p)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


@dataclass(frozen=True)
class Architecture:
    """Shape of the transformation network (Johnson et al.: width 32, 5 residual blocks)."""

    width: int = 32
    blocks: int = 5
    skip: bool = False  # True: output = sigmoid(logit(input) + residual); measured worse (RESULTS.md)

    def __post_init__(self):
        if not 4 <= self.width <= 256:
            raise InputError(f"network width {self.width}: expected 4..256")
        if not 0 <= self.blocks <= 20:
            raise InputError(f"residual blocks {self.blocks}: expected 0..20")


def build_network(arch: Architecture | None = None, seed: int = 0) -> keras.Model:
    """The style transformation network: float32 RGB 0..255 in, RGB 0..255 out, any size.

    Its initial weights follow from ``seed`` alone: each conv gets its own seeded initializer, and no
    global random state (Python, NumPy, TensorFlow, Keras) is read or changed.
    """
    arch = arch or Architecture()
    L = keras.layers
    w = arch.width
    # one independent 31-bit seed per conv layer (6 + 2 per residual block), derived from ``seed``
    seeds = iter(int(v) for v in np.random.SeedSequence(seed).generate_state(6 + 2 * arch.blocks) >> 1)

    def init() -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=next(seeds))

    def conv(x, filters, kernel, stride=1, norm=True, relu=True, name=""):
        x = ReflectPad2D(kernel // 2, name=f"{name}_pad")(x)
        x = L.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=not norm, name=f"{name}_conv",
                     kernel_initializer=init())(x)
        if norm:
            x = InstanceNorm(name=f"{name}_in")(x)
        if relu:
            x = L.ReLU(name=f"{name}_relu")(x)
        return x

    inp = keras.Input((None, None, 3), name="rgb")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="scale_in")(inp)
    x = conv(x, w, 9, name="down0")
    x = conv(x, 2 * w, 3, 2, name="down1")
    x = conv(x, 4 * w, 3, 2, name="down2")
    for i in range(arch.blocks):
        y = conv(x, 4 * w, 3, name=f"res{i}a")
        y = conv(y, 4 * w, 3, relu=False, name=f"res{i}b")
        x = L.Add(name=f"res{i}_add")([x, y])
    for i, f in enumerate((2 * w, w)):
        x = L.UpSampling2D(2, interpolation="nearest", name=f"up{i}_nn")(x)
        x = conv(x, f, 3, name=f"up{i}")
    x = ReflectPad2D(4, name="out_pad")(x)
    x = L.Conv2D(3, 9, padding="valid", name="out_conv",
                 kernel_initializer="zeros" if arch.skip else init())(x)
    if arch.skip:
        x = L.Add(name="skip_add")([x, InputLogit(name="skip_logit")(inp)])
    x = L.Activation("sigmoid", name="out_sigmoid")(x)
    out = L.Rescaling(255.0, name="scale_out")(x)
    return keras.Model(inp, out, name="nst_fast_style")


def _pad_for_network(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Edge-pad an HxWx3 array to sides >= MIN_SIDE and a multiple of MULTIPLE; returns it and (h, w)."""
    h, w = x.shape[:2]
    th = max(MIN_SIDE, math.ceil(h / MULTIPLE) * MULTIPLE)
    tw = max(MIN_SIDE, math.ceil(w / MULTIPLE) * MULTIPLE)
    # Split the padding over both sides so the image stays centred in its receptive field.
    ph, pw = th - h, tw - w
    padded = np.pad(x, [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)], mode="edge")
    return padded, (ph // 2, pw // 2)


def apply_network(model: keras.Model, rgb: np.ndarray) -> np.ndarray:
    """Run the network on one HxWx3 float 0..255 image of any size (>= 1x1); float32 0..255 out."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise InputError(f"expected an HxWx3 image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    padded, (top, left) = _pad_for_network(rgb.astype(np.float32))
    out = forward(model)(tf.constant(padded[None]))[0].numpy()
    out = out[top: top + h, left: left + w]
    if not np.all(np.isfinite(out)):
        raise NumericalError("the style network produced NaN or Inf")
    return np.clip(out, 0, 255)


def forward(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """The model's traced inference pass, kept on the model itself so it lives and dies with it."""
    traced = getattr(model, "nst_forward", None)
    if traced is None:
        traced = tf.function(lambda t: model(t, training=False), reduce_retracing=True,
                             input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
        object.__setattr__(model, "nst_forward", traced)  # a plain attribute: Keras does not track it
    return traced


# --- losses --------------------------------------------------------------------------------------
def batch_gram(features: tf.Tensor) -> tf.Tensor:
    """Gram matrices F_b^T F_b / (h*w) of a [b, h, w, c] activation, in float32: [b, c, c].

    The batched form of :func:`nst_core.losses.gram` (which takes one image).
    """
    f = tf.cast(features, tf.float32)
    hw = tf.cast(tf.shape(f)[1] * tf.shape(f)[2], tf.float32)
    return tf.einsum("bhwc,bhwd->bcd", f, f) / hw


def _loss_terms(feats: VGGFeatures, opts: StyleOptions, y, content_acts, style_targets, lw):
    """(content, style, tv) of a batch ``y`` of outputs; content/style are per-image means."""
    acts = feats(y, losses.feature_layers(opts))
    batch = y.shape[0]
    c = tf.add_n([losses.content_loss(acts[opts.content_layer][i: i + 1], content_acts[i: i + 1])
                  for i in range(batch)]) / batch
    # style_layer_loss sums over the batch of Grams broadcast against the target: divide by b.
    s = tf.add_n([lw[i] * losses.style_layer_loss(batch_gram(acts[name]), style_targets[i][None])
                  for i, name in enumerate(opts.style_layers)]) / batch
    tv = losses.tv_loss(y)
    return c, s, tv


# --- training ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained (StyleOptions holds the loss settings)."""

    steps: int = TRAIN_STEPS
    batch_size: int = 4
    crop: int = TRAIN_CROP
    learning_rate: float = 1e-3
    log_every: int = 1
    # Training multiplies the style weight by this: a network trades content for style differently from
    # an optimised image of the same weights (the default: nst_core.options.TRAIN_STYLE_BOOST).
    style_boost: float = TRAIN_STYLE_BOOST

    def __post_init__(self):
        if not 1 <= self.steps <= 1_000_000:
            raise InputError(f"steps {self.steps}: expected 1..1000000")
        if not 1 <= self.batch_size <= 64:
            raise InputError(f"batch size {self.batch_size}: expected 1..64")
        if not 16 <= self.crop <= 2048 or self.crop % MULTIPLE:
            raise InputError(f"crop {self.crop}: expected a multiple of {MULTIPLE} in 16..2048")
        if not (0 < self.learning_rate <= 1) or not math.isfinite(self.learning_rate):
            raise InputError(f"learning rate {self.learning_rate}: expected 0 < lr <= 1")
        if not (0 < self.style_boost <= 100) or not math.isfinite(self.style_boost):
            raise InputError(f"style boost {self.style_boost}: expected 0 < boost <= 100")


def expand_contents(contents: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Paths from a glob pattern, a folder, a file, or a list of any of them (sorted, unique)."""
    items = [contents] if isinstance(contents, (str, os.PathLike)) else list(contents)
    out: list[str] = []
    for item in items:
        s = str(item)
        if Path(s).is_dir():
            out += sorted(str(p) for p in Path(s).iterdir() if p.is_file())
        elif any(ch in s for ch in "*?["):
            found = sorted(glob.glob(s, recursive=True))
            if not found:
                raise InputError(f"{s}: no content image matches this pattern")
            out += found
        else:
            out.append(s)
    out = list(dict.fromkeys(out))
    if not out:
        raise InputError("no content images given")
    return out


def _training_image(arr: np.ndarray, size: int, crop: int) -> np.ndarray:
    """The content at the scale the network is trained for (longest side ``size``), never below the crop."""
    h, w = images.fit_size(arr.shape[:2], size)
    k = max(1.0, crop / min(h, w))
    return images.resize(arr, (max(crop, round(h * k)), max(crop, round(w * k))))


def _style_source(style: images.ImageLike, name: str) -> tuple[bytes, str]:
    """The style image's bytes and file suffix, to embed in the model file: a file's or given bytes as they
    are (so the metadata's sha256 is the style file's), anything else encoded as PNG."""
    if isinstance(style, (str, os.PathLike)):
        path = Path(style)
        if path.is_file():
            return path.read_bytes(), path.suffix.lower() or ".img"
    if isinstance(style, (bytes, bytearray)):
        return bytes(style), Path(name).suffix.lower() if Path(name).suffix else ".img"
    arr = images.load_image(style, name)
    return images.encode_png(arr), ".png"


def train_style_network(style: images.ImageLike, contents: str | Sequence[images.ImageLike],
                        options: StyleOptions | None = None, config: TrainConfig | None = None, *,
                        arch: Architecture | None = None, style_name: str | None = None,
                        weights: Weights | None = None, stylizer: Stylizer | None = None,
                        progress: TraceFn | None = None,
                        content_names: Sequence[str] | None = None,
                        snapshot: Callable[[int, keras.Model], None] | None = None,
                        snapshot_steps: Sequence[int] = ()) -> tuple[keras.Model, dict[str, Any]]:
    """Train a style network; returns ``(model, figures)``.

    ``contents`` is a glob pattern, folder or path, or a list of paths/arrays; each step takes
    ``batch_size`` random (flipped) ``crop``-pixel crops of them, scaled so their longest side is
    ``options.size`` (the output size the network is meant for; the style Grams are taken at that
    scale too).  ``figures`` records what a model file keeps: steps, seconds, batch, crop, final
    and traced losses.  ``progress`` gets each trace entry.  ``content_names`` names contents given as
    bytes or arrays (in the figures and error messages).  ``snapshot(step, model)`` is called after
    each step listed in ``snapshot_steps`` (e.g. to save weights and chart quality against training time).
    """
    opts = options or StyleOptions()
    cfg = config or TrainConfig()
    arch = arch or Architecture()
    style_name = style_name or images.describe(style)
    style_arr = images.load_image(style, style_name)
    style_bytes, style_suffix = _style_source(style, style_name)
    if isinstance(contents, (str, os.PathLike)) or (isinstance(contents, (list, tuple)) and contents
                                                     and all(isinstance(c, (str, os.PathLike)) for c in contents)):
        sources: list[Any] = expand_contents(contents)
    else:
        sources = list(contents)
    if not sources:
        raise InputError("no content images given")
    names = list(content_names) if content_names is not None else [images.describe(s) for s in sources]
    if len(names) != len(sources):
        raise InputError(f"{len(names)} content names for {len(sources)} content images")
    arrs = [images.load_image(s, n) for s, n in zip(sources, names)]
    pool = [_training_image(a, opts.size, cfg.crop) for a in arrs]

    stylizer = stylizer if stylizer is not None else Stylizer(opts, weights)
    precision = resolve_precision(opts.precision)
    feats = stylizer.features(opts.pooling, precision)
    # Gram targets at the training scale: the style at the (median) pixel count of the scaled contents.
    px = float(np.median([np.prod(images.fit_size(a.shape[:2], opts.size)) for a in arrs]))
    side = max(1, round(px ** 0.5))
    targets = stylizer.style_targets(opts, precision, style_arr, (side, side))
    del arrs
    lw = tf.constant(losses.layer_weights(opts))
    wts = tf.constant([opts.content_weight, opts.style_weight * cfg.style_boost, opts.tv_weight], tf.float32)
    loss_scale = losses.loss_scale(precision)

    model = build_network(arch, opts.seed)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(model.trainable_variables)
    shape = (cfg.batch_size, cfg.crop, cfg.crop, 3)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def train_step(batch):
        content_acts = feats(batch, (opts.content_layer,))[opts.content_layer]
        with tf.GradientTape() as tape:
            y = model(batch, training=True)
            c, s, tv = _loss_terms(feats, opts, y, content_acts, targets, lw)
            total = wts[0] * c + wts[1] * s + wts[2] * tv
            scaled = total * loss_scale
        grads = tape.gradient(scaled, model.trainable_variables)
        grads = [g / loss_scale for g in grads]
        optimizer.apply(grads, model.trainable_variables)
        return total, c, s, tv

    rng = np.random.default_rng(opts.seed)

    def sample() -> np.ndarray:
        out = np.empty(shape, np.float32)
        for b in range(cfg.batch_size):
            img = pool[rng.integers(len(pool))]
            y0 = rng.integers(img.shape[0] - cfg.crop + 1)
            x0 = rng.integers(img.shape[1] - cfg.crop + 1)
            patch = img[y0: y0 + cfg.crop, x0: x0 + cfg.crop]
            out[b] = patch[:, ::-1] if rng.random() < 0.5 else patch
        return out

    trace: list[dict[str, float]] = []
    t0 = time.perf_counter()
    first_step_s = 0.0
    for step in range(1, cfg.steps + 1):
        total, c, s, tv = (float(v) for v in train_step(tf.constant(sample())))
        if not math.isfinite(total):
            raise NumericalError(f"training loss is {total} at step {step}")
        if step == 1:
            first_step_s = time.perf_counter() - t0
        entry = {"step": step, "seconds": round(time.perf_counter() - t0, 3), "total": total, "content": c,
                 "style": s, "tv": tv}
        if step % cfg.log_every == 0 or step in (1, cfg.steps):
            trace.append(entry)
        if progress is not None:
            progress(entry)
        if snapshot is not None and step in snapshot_steps:
            paused = time.perf_counter()
            snapshot(step, model)
            t0 += time.perf_counter() - paused  # the snapshot's own time is not training time
    seconds = time.perf_counter() - t0
    last = trace[-1]
    tail = trace[-max(1, len(trace) // 10):]
    figures = {
        "steps": cfg.steps, "batch_size": cfg.batch_size, "crop": cfg.crop, "learning_rate": cfg.learning_rate,
        "style_boost": cfg.style_boost,
        "seconds": round(seconds, 3), "first_step_seconds": round(first_step_s, 3),
        "seconds_per_step": round((seconds - first_step_s) / max(1, cfg.steps - 1), 4),
        "precision": precision, "style_target_side": side, "contents": names,
        "initial_losses": {k: trace[0][k] for k in ("total", "content", "style", "tv")},
        "final_losses": {k: last[k] for k in ("total", "content", "style", "tv")},
        "final_losses_mean_last_10pct": {k: float(np.mean([e[k] for e in tail]))
                                         for k in ("total", "content", "style", "tv")},
        "trace": trace,
    }
    # Plain attributes (not tracked by Keras) for save_style_network().
    object.__setattr__(model, "nst_meta", _metadata(opts, arch, style_name, style_bytes, style_suffix, figures))
    object.__setattr__(model, "nst_style", style_bytes)
    return model, figures


def _metadata(opts: StyleOptions, arch: Architecture, style_name: str, style_bytes: bytes, style_suffix: str,
              figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "style": {"name": Path(style_name).name if style_name else "", "path": style_name,
                  "sha256": style_sha256(style_bytes), "entry": STYLE_ENTRY + style_suffix},
        "options": opts.to_dict(), "architecture": dataclasses.asdict(arch), "training": figures,
        "versions": versions(),
    }


# --- files ---------------------------------------------------------------------------------------
def save_style_network(model: keras.Model, path: str | os.PathLike, meta: dict[str, Any] | None = None,
                       style_bytes: bytes | None = None) -> Path:
    """Write ``model`` as a ``.keras`` file with our marker, metadata and the style image inside."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InputError(f"{path}: a style network file must end in .keras")
    meta = meta if meta is not None else getattr(model, "nst_meta", None)
    style_bytes = style_bytes if style_bytes is not None else getattr(model, "nst_style", None)
    if meta is None or style_bytes is None:
        raise InputError("this model has no style metadata: train it with train_style_network()")
    tmp = path.with_name(path.name + ".tmp.keras")
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(META_ENTRY, json.dumps(meta, indent=1, sort_keys=True))
        z.writestr(meta["style"]["entry"], style_bytes)
    os.replace(tmp, path)
    return path


@dataclass
class StyleNetwork:
    """A loaded style network: the Keras model, its metadata and the style image."""

    model: keras.Model
    meta: dict[str, Any]
    style_bytes: bytes
    path: str = ""
    _style_arr: np.ndarray | None = field(default=None, repr=False)

    @property
    def style_name(self) -> str:
        return self.meta["style"]["name"]

    @property
    def options(self) -> StyleOptions:
        known = {f.name for f in dataclasses.fields(StyleOptions)}
        return StyleOptions.from_dict({k: v for k, v in self.meta["options"].items() if k in known})

    def style_image(self) -> np.ndarray:
        if self._style_arr is None:
            self._style_arr = images.load_image(self.style_bytes, f"{self.path}: embedded style image")
        return self._style_arr


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Our metadata of a style network file, or InputError naming the file and why it is not one."""
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{name}: file not found")
    if p.is_dir():
        raise InputError(f"{name}: is a directory, not a style network file")
    if not zipfile.is_zipfile(p):
        raise InputError(f"{name}: not a style network (.keras) file: not a zip archive")
    try:
        with zipfile.ZipFile(p) as z:
            entries = set(z.namelist())
            if META_ENTRY not in entries:
                what = "a plain Keras model" if "config.json" in entries else "a zip archive"
                raise InputError(f"{name}: not an nst fast-style network: {what} without the {META_ENTRY} marker")
            meta = json.loads(z.read(META_ENTRY))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise InputError(f"{name}: not an nst fast-style network: {META_ENTRY} has format "
                                 f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}")
            if meta.get("version") != FORMAT_VERSION:
                raise InputError(f"{name}: style network format version {meta.get('version')!r}; this nst_core "
                                 f"reads version {FORMAT_VERSION}")
            entry = meta.get("style", {}).get("entry")
            if entry not in entries:
                raise InputError(f"{name}: damaged style network: the style image entry {entry!r} is missing")
            if "config.json" not in entries:
                raise InputError(f"{name}: damaged style network: the Keras model entries are missing")
            meta["_style_bytes"] = z.read(entry)
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError) as e:
        raise InputError(f"{name}: damaged style network file ({type(e).__name__}: {e})") from None
    if hashlib.sha256(meta["_style_bytes"]).hexdigest() != meta["style"].get("sha256"):
        raise InputError(f"{name}: damaged style network: the embedded style image does not match its sha256")
    return meta


def load_style_network(path: str | os.PathLike) -> StyleNetwork:
    """Load a file written by :func:`save_style_network`; InputError (naming the file) for anything else."""
    meta = read_metadata(path)
    style_bytes = meta.pop("_style_bytes")
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a damaged archive
        raise InputError(f"{path}: damaged style network: Keras cannot load it ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return StyleNetwork(model=model, meta=meta, style_bytes=style_bytes, path=str(path))


# --- stylising -----------------------------------------------------------------------------------
@dataclass
class FastResult(Result):
    """A :class:`~nst_core.stylizer.Result` from a style network, with the network named in its provenance."""

    network: dict[str, Any] = field(default_factory=dict)

    def applied_options(self) -> dict[str, Any]:
        """The options that played a part (:func:`applied_options`); what metrics and PNG text record."""
        return applied_options(self.options)

    def metrics(self) -> dict[str, Any]:
        return {**super().metrics(), "options": self.applied_options(), "mode": "fast", "network": self.network}

    def png_text(self) -> dict[str, str]:
        return {**super().png_text(), "nst:mode": "fast", "nst:network": json.dumps(self.network, sort_keys=True),
                "nst:options": json.dumps(self.applied_options(), sort_keys=True)}


def applied_options(options: StyleOptions) -> dict[str, Any]:
    """The part of ``options`` a fast-mode stylisation uses: the network's loss options (:data:`LOSS_FIELDS`:
    weights, layers, pooling, seed, precision, size).  Steps, optimiser, init, colours and schedule play no
    part in one forward pass, so provenance leaves them out."""
    values = options.to_dict()
    return {k: values[k] for k in LOSS_FIELDS}


def stylize_with_network(network: StyleNetwork | str | os.PathLike, content: images.ImageLike,
                         size: int | None = None, *, compute_losses: bool = True,
                         content_name: str | None = None, precision: str | None = None,
                         weights: str | None = None, stylizer: Stylizer | None = None,
                         mask: images.ImageLike | None = None, mask_name: str | None = None,
                         memory_budget: int | None = None) -> FastResult:
    """Stylise one image with a trained network: a Result like :meth:`Stylizer.stylize` returns.

    ``size`` is the output's longest side (default: the size the network was trained for); above the
    options' ``look_size`` the network runs at that size and :func:`restore_detail` makes the output;
    ``precision`` and ``weights`` override the network's for the loss evaluation, ``memory_budget`` (MB, 0:
    auto) its budget: an output whose pass or detail restoration needs more is refused before it runs.  The
    losses are the engine's (same features, same loss terms and weights as the Gatys run would
    report) unless ``compute_losses`` is False (then they are NaN and only the network runs).
    ``stylizer`` lends its VGG19 features and Gram cache to the losses (one VGG19 per process; its
    weights score them); without one, a Stylizer for these options is built when losses are computed.
    A content's alpha and a ``mask`` are honoured as :meth:`Stylizer.stylize` does: the network runs on
    the whole image (transparent pixels bled from the object's colours), then the mask's composite and
    the alpha are applied, and the losses count the region only.
    """
    if not isinstance(network, StyleNetwork):
        network = load_style_network(network)
    t0 = time.perf_counter()
    opts = network.options
    if size is not None:
        opts = opts.replace(size=size)
    if precision is not None:
        opts = opts.replace(precision=precision)
    if weights is not None:  # the VGG19 copy that scores the losses (the training machine's path may not exist)
        opts = opts.replace(weights=weights)
    if memory_budget is not None:
        opts = opts.replace(memory_budget=memory_budget)
    content_name = content_name or images.describe(content)
    arr, alpha = images.load_rgba(content, content_name)
    mask_name = mask_name or (images.describe(mask) if mask is not None else "")
    region = masks.build_region(alpha, None if mask is None else
                                masks.load_mask(mask, f"mask {mask_name}", arr.shape[:2]), content_name,
                                opts.mask_feather, opts.mask_output == "alpha")
    seen = arr if region is None or region.alpha is None else masks.bleed(arr, region.alpha)
    hw = images.fit_size(arr.shape[:2], opts.size)
    # Above look_size the network runs at the look size, so strokes scale with the image (run at 4096 px
    # its strokes stay the size it learned, a few pixels); the content's finer detail is restored on top.
    work_hw = hw if opts.size <= opts.look_size else images.fit_size(arr.shape[:2], opts.look_size)
    budget, need = tiling.budget_bytes(opts.memory_budget), fast_peak_bytes(hw, work_hw)
    if need > budget:
        raise tiling.over_budget(content_name, hw, need, budget, " in fast mode")
    c_work = images.resize(seen, work_hw)
    look = apply_network(network.model, c_work)
    out = look if work_hw == hw else restore_detail(look, images.resize(seen, hw))
    if region is not None:
        out = masks.composite(out, arr, region, hw)
    out = masks.with_opaque_alpha(out, alpha)
    net_s = time.perf_counter() - t0
    used = resolve_precision(opts.precision)
    parts = {k: float("nan") for k in ("content", "style", "tv", "total")}
    if compute_losses:  # above look_size on the look-size image, like optimize mode's final losses
        parts = fast_losses(look, c_work, network.style_image(), opts, used, stylizer,
                            region.weight_at(work_hw) if region is not None else None)
    info = {"path": network.path, "style": network.meta["style"], "architecture": network.meta["architecture"],
            "training": {k: v for k, v in network.meta["training"].items() if k not in ("trace", "contents")},
            "network_seconds": round(net_s, 4)}
    return FastResult(image=images.to_uint8(out), losses=parts, steps=0, seconds=time.perf_counter() - t0,
                      trace=[], options=opts, precision=used, content=content_name,
                      styles=[network.meta["style"].get("path") or network.style_name], network=info,
                      mask=mask_name, region=region.fraction() if region is not None else 1.0)


NETWORK_BYTES_PER_PX = 2048  # the network's activations per pixel it runs at (~0.54 GB at 512x512, measured)
DETAIL_COPIES = 6  # float32 RGB arrays of the output's size alive at once in restore_detail


def fast_peak_bytes(hw: tuple[int, int], work_hw: tuple[int, int]) -> int:
    """What a fast stylisation plans for besides the runtime: the network's pass, or the detail restoration
    after it (they do not overlap)."""
    detail = DETAIL_COPIES * hw[0] * hw[1] * 3 * 4 if hw != work_hw else 0
    return max(NETWORK_BYTES_PER_PX * work_hw[0] * work_hw[1], detail)


def restore_detail(look: np.ndarray, content: np.ndarray) -> np.ndarray:
    """``look`` at ``content``'s (larger) size: upsampled, plus the content's detail the look's grid could
    not hold, then back-projected so that resized to the look's size it is the look again."""
    hw, small = content.shape[:2], look.shape[:2]
    band = content - images.resize_field(images.resize_field(content, small), hw)
    return _back_project(np.clip(images.resize_field(look, hw) + band, 0, 255), look)


def fast_losses(out: np.ndarray, content: np.ndarray, style: np.ndarray, opts: StyleOptions,
                precision: str, stylizer: Stylizer | None = None,
                weight: np.ndarray | None = None) -> dict[str, float]:
    """The engine's loss terms (weighted total too) of ``out`` for ``content`` and ``style``, on the
    ``stylizer``'s VGG19 (by default a new Stylizer for ``opts``); with a region ``weight`` (HxW 0..1)
    over that region only, as the optimizer's masked losses."""
    stylizer = stylizer if stylizer is not None else Stylizer(opts.replace(precision=precision))
    feats = stylizer.features(opts.pooling, precision)
    targets = stylizer.style_targets(opts, precision, style, out.shape[:2])
    c_acts = feats(tf.constant(content[None]), (opts.content_layer,))[opts.content_layer]
    if weight is None:
        c, s, tv = _loss_terms(feats, opts, tf.constant(out[None], tf.float32), c_acts, targets,
                               tf.constant(losses.layer_weights(opts)))
    else:
        c, s, tv = _masked_terms(feats, opts, out, c_acts, targets, weight)
    parts = {"content": float(c), "style": float(s), "tv": float(tv)}
    parts["total"] = opts.content_weight * parts["content"] + opts.style_weight * parts["style"] + \
        opts.tv_weight * parts["tv"]
    return parts


def _masked_terms(feats: VGGFeatures, opts: StyleOptions, out: np.ndarray, c_acts, targets, weight: np.ndarray):
    layers = losses.feature_layers(opts)
    levels = masks.layer_weights(weight, 4)

    def w(name: str) -> tf.Tensor:
        return tf.constant(levels[int(name[5]) - 1][None, ..., None])

    y = tf.constant(out[None], tf.float32)
    acts = feats(y, layers)
    c = losses.masked_content_loss(acts[opts.content_layer], c_acts, w(opts.content_layer))
    lw = losses.layer_weights(opts)
    s = tf.add_n([float(lw[i]) * losses.style_layer_loss(losses.masked_gram(acts[name], w(name)), targets[i])
                  for i, name in enumerate(opts.style_layers)])
    return c, s, losses.tv_loss(y)


def training_options(options: StyleOptions) -> StyleOptions:
    """The part of ``options`` a network's training uses (:data:`LOSS_FIELDS`), on the defaults: equal
    results mean one network serves both."""
    return StyleOptions().replace(**{k: getattr(options, k) for k in LOSS_FIELDS})


def style_sha256(data: bytes) -> str:
    """What a network's metadata records of its style (``meta["style"]["sha256"]``) for these style bytes."""
    return hashlib.sha256(data).hexdigest()


__all__ = ["Architecture", "FastResult", "StyleNetwork", "TrainConfig", "applied_options", "apply_network",
           "batch_gram", "build_network", "fast_peak_bytes", "load_style_network", "read_metadata",
           "save_style_network", "style_sha256", "stylize_with_network", "train_style_network", "training_options"]
