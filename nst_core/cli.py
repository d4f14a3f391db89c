"""nst-stylize: one pair from the command line, a thin shell over :class:`nst_core.Stylizer`.

Exit codes: 0 done; 2 usage error or bad input (one line naming the input and the reason);
1 anything else (missing weights, numerical failure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nst_core import color, images, masks, options, outfiles, progress, weights
from nst_core.errors import InputError, NSTError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
PROG = "nst-stylize"


def report_error(prog: str, e: NSTError, before: Callable[[], None] = lambda: None) -> int:
    """``before()`` (e.g. end a progress line), then ``e`` as one line on stderr; its exit code: 2 for bad
    input, 1 for anything else (missing weights, numerical failure)."""
    before()
    usage = isinstance(e, InputError)
    print(f"{prog}: {'error' if usage else 'failed'}: {e}", file=sys.stderr)
    return EXIT_USAGE if usage else EXIT_FAIL


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-stylize", description="Stylise one content image with one or more style images (Gatys et al.).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: nst-stylize --ci cat.jpg --si starry.jpg --o out/ --size 512\n\n"
               "Every output path is checked before any work. An existing output is overwritten with a note on "
               "stderr;\n--no-clobber refuses instead (exit 2).")
    p.add_argument("--content", "--ci", dest="content", required=True, help="content image")
    p.add_argument("--style", "--si", dest="style", action="append",
                   help="style image (repeat for a blend of several); required unless --model is given")
    p.add_argument("--model", metavar="STYLE.keras",
                   help="fast mode: stylise in one pass with a style network trained by nst-train-style "
                        "(takes the place of --style; of the engine options only --size, --precision and "
                        "--weights apply, the others are ignored with a warning; --size defaults to the "
                        "network's training size)")
    p.add_argument("--mask", metavar="M",
                   help="greyscale image of where to stylize: white stylize, black keep the content, grey blend "
                        "(resized to the content; the edge fades over --mask-feather px). A content with "
                        "transparency is stylized where it is opaque and keeps its alpha, with or without a mask")
    p.add_argument("--style-weights", dest="style_weights",
                   help="blend weights of the style images, comma separated (alias of --style-blend)")
    p.add_argument("--output", "--o", dest="output", required=True,
                   help="output image: .png, .jpg/.jpeg or .webp (the extension picks the format; provenance goes in "
                        "PNG text chunks or XMP), or a folder (gets <content>_<style>.png)")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write the image every N steps as <output>.stepNNNN.png (in colour and with the "
                        "final image's provenance text, as the final image)")
    p.add_argument("--metrics", metavar="PATH", help="write the metrics JSON (losses, trace, options; size as "
                   "[height, width] and as height and width) here")
    p.add_argument("--no-clobber", action="store_true",
                   help="refuse (exit 2) if an output file exists, instead of overwriting it with a note")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary; errors and warnings only")
    engine = p.add_argument_group("engine options")
    options.add_arguments(engine, defaults_none=True, skip=("image_format",))  # the output's extension says it
    return p


def output_path(output: str, content: str, styles: list[str]) -> Path:
    out = Path(output)
    if output.endswith(("/", "\\")) or out.is_dir():
        name = Path(content).stem + "_" + "+".join(Path(s).stem for s in styles) + ".png"
        return out / name
    return out


def snapshot_path(out: Path, step: int) -> Path:
    return out.with_name(f"{out.stem}.step{step:04d}.png")


def check_outputs(out: Path, metrics: str | None, snapshots: list[Path], no_clobber: bool) -> None:
    """Every output path checked before any work (InputError); existing files refused or announced."""
    images.format_for_path(out)
    existing = [out] if outfiles.check_output(out, "--output") else []
    if metrics:
        if Path(metrics).resolve() == out.resolve():
            raise InputError(f"--metrics {metrics}: the same file as the output image")
        if outfiles.check_output(metrics, "--metrics"):
            existing.append(Path(metrics))
    existing += [p for p in snapshots if p.is_file()]
    if not existing:
        return
    names = ", ".join(map(str, existing[:3])) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
    if no_clobber:
        raise InputError(f"{names}: exists; --no-clobber refuses to overwrite")
    print(f"nst-stylize: overwriting {names} (--no-clobber refuses)", file=sys.stderr)


def check_mask(mask: str | None, content: np.ndarray) -> None:
    """--mask read before any work: InputError naming it if it is not an image or is all black."""
    if mask is not None:
        masks.load_mask(mask, f"mask {mask}", content.shape[:2])


def check_save_every(n: int) -> None:
    if n < 0:
        raise InputError(f"--save-every {n}: expected 0 (no snapshots) or a positive number of steps")


class Snapshots:
    """``--save-every``: the image every N steps, in colour and with the final image's provenance text."""

    def __init__(self, every: int, out: Path, content: np.ndarray, opts: options.StyleOptions, content_name: str,
                 style_names: list[str]):
        self.every, self.out, self.content, self.opts = every, out, content, opts
        self.content_name, self.style_names = content_name, style_names
        self.precision = ""

    def __call__(self, entry: dict, image: np.ndarray) -> None:
        if not self.every or entry["step"] % self.every:
            return
        from nst_core.stylizer import Result

        rgb = color.restore_colors(image, self.content, self.opts.preserve_colors)
        shot = Result(image=images.to_uint8(rgb), losses={k: entry[k] for k in ("content", "style", "tv", "total")},
                      steps=entry["step"], seconds=entry["seconds"], trace=[], options=self.opts,
                      precision=self.precision, content=self.content_name, styles=self.style_names)
        where = {k: entry[k] for k in ("step", "scale", "stage", "height", "width", "tiles") if k in entry}
        text = {**shot.png_text(), "nst:snapshot": json.dumps(where)}
        path = snapshot_path(self.out, entry["step"])
        try:
            outfiles.write_atomic(path, images.encode_png(shot.image, text))
        except OSError as e:  # reported like the final image's write: one line, exit 1
            raise NSTError(f"cannot write {path} ({e.strerror or e})") from None


class StepProgress:
    """The progress line of an optimisation: step, scale (and tiles) and losses; a log gets each new scale."""

    def __init__(self, total: int, num_scales: int, quiet: bool):
        self.bar = progress.ProgressBar(total, quiet=quiet, eta=False)
        self.num_scales, self.scale = num_scales, None

    def __call__(self, entry: dict) -> None:
        mark = entry.get("scale") != self.scale
        self.scale = entry.get("scale")
        self.bar.update(entry["step"], progress.scale_text(entry, self.num_scales) + " " + progress.losses_text(entry),
                        mark=mark)

    def close(self) -> None:
        self.bar.close()


def given_flags(args: argparse.Namespace) -> list[str]:
    """The engine option flags given on the command line (their defaults are None)."""
    return [s.flag for s in options.specs() if getattr(args, s.name, None) is not None]


# Of the engine options, the ones a style network's one pass uses (fast.stylize_with_network).
FAST_FLAGS = ("--size", "--precision", "--weights", "--memory-budget", "--image-quality", "--mask-feather",
              "--mask-output", "--background")


def ignored_in_fast_mode(args: argparse.Namespace) -> list[str]:
    ignored = [f for f in given_flags(args) if f not in FAST_FLAGS]
    if args.style_weights is not None:
        ignored.append("--style-weights")
    if args.save_every:
        ignored.append("--save-every")
    return ignored


def summary(out: Path, result, how: str) -> str:
    losses = " ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    h, w = result.image.shape[:2]
    return f"wrote {out} ({w}x{h} px, width x height; {how}, {result.precision}; {losses})"


def save(out: Path, metrics: str | None, result, quality: int) -> bool:
    """Write the image (format from its extension), then the metrics; a failed write (disk full, ...) is one
    line, not a traceback."""
    files = [(out, lambda: result.encode(images.format_for_path(out), quality))]
    if metrics:
        files.append((Path(metrics), lambda: result.metrics_json().encode()))
    for path, data in files:
        try:
            outfiles.write_atomic(path, data())
        except OSError as e:
            print(f"nst-stylize: failed: cannot write {path} ({e.strerror or e})", file=sys.stderr)
            return False
    return True


def finish(out: Path, args: argparse.Namespace, result, how: str) -> int:
    """Write the result (image, then metrics) and, unless --quiet, say what was written; the exit code."""
    if not save(out, args.metrics, result, options.from_namespace(args).image_quality):
        return EXIT_FAIL
    if not args.quiet:
        print(summary(out, result, how), file=sys.stderr)
    return EXIT_OK


def main_model(args: argparse.Namespace) -> int:
    """nst-stylize --model: one forward pass of a trained style network."""
    try:
        if args.style:
            raise InputError("give --style (optimise the image) or --model (a trained network), not both")
        check_save_every(args.save_every)
        options.from_namespace(args)  # validates every given engine option
        if args.weights is not None:
            weights.check_source(args.weights)
        content = images.load_image(args.content, args.content)
        check_mask(args.mask, content)
        out = output_path(args.output, args.content, [args.model])
        check_outputs(out, args.metrics, [], args.no_clobber)
        from nst_core import fast  # TensorFlow is imported here, after the cheap checks

        meta = fast.read_metadata(args.model)  # refuses a file that is not ours before Keras opens it
        if args.weights is None:
            weights.check_source(meta.get("options", {}).get("weights", "auto"))
        ignored = ignored_in_fast_mode(args)
        if ignored:  # after the checks, so a refused run's stderr stays one line
            print(f"nst-stylize: warning: --model stylises in one pass: ignoring {', '.join(ignored)} "
                  f"(only {', '.join(FAST_FLAGS)} apply)", file=sys.stderr)
        network = fast.load_style_network(args.model)
        result = fast.stylize_with_network(network, args.content, args.size, content_name=args.content,
                                           precision=args.precision, weights=args.weights, mask=args.mask,
                                           mask_name=args.mask, memory_budget=args.memory_budget)
    except NSTError as e:
        return report_error(PROG, e)
    return finish(out, args, result, f"fast mode with {args.model}, {result.seconds:.2f}s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(options.join_negative_values(sys.argv[1:] if argv is None else argv,
                                                          ("--style-weights",)))
    if args.model is not None:
        return main_model(args)
    if not args.style:
        parser.error("the following arguments are required: --style/--si (or --model)")
    try:
        if args.style_weights is not None:
            if args.style_blend is not None:
                raise InputError("give --style-weights or --style-blend, not both")
            args.style_blend = args.style_weights
        check_save_every(args.save_every)
        opts = options.from_namespace(args)
        weights.check_source(opts.weights)
        content = images.load_image(args.content, args.content)
        check_mask(args.mask, content)
        styles = [images.load_image(s, s) for s in args.style]
        if opts.style_blend and len(opts.style_blend) != len(styles):
            raise InputError(f"--style-weights: {len(opts.style_blend)} weights for {len(styles)} style images")
        if opts.init_path:
            images.load_image(opts.init_path, f"--init {opts.init_path}")
        out = output_path(args.output, args.content, args.style)
        schedule = opts.schedule()
        total = sum(steps for _, steps in schedule)
        shots = [snapshot_path(out, n) for n in range(args.save_every, total + 1, args.save_every)] \
            if args.save_every else []
        check_outputs(out, args.metrics, shots, args.no_clobber)
    except NSTError as e:  # bad input, or no weights found ('auto'): a setup problem
        return report_error(PROG, e)

    from nst_core.stylizer import Stylizer

    bar = StepProgress(total, len(schedule), args.quiet)
    snapshots = Snapshots(args.save_every, out, content, opts, args.content, list(args.style))

    def on_step(entry: dict, image: np.ndarray) -> None:
        snapshots(entry, image)
        bar(entry)

    try:
        stylizer = Stylizer(opts, one_pair=True)
        snapshots.precision = stylizer.precision
        result = stylizer.stylize(args.content, styles, opts, progress=on_step, content_name=args.content,
                                  style_names=args.style, mask=args.mask, mask_name=args.mask)
    except NSTError as e:
        return report_error(PROG, e, bar.close)
    bar.close()
    steps = f"{result.steps} step{'s' * (result.steps != 1)}"
    return finish(out, args, result, f"{steps}, {result.seconds:.1f}s")


def exit_fast(rc: int) -> None:
    """Exit without the interpreter's teardown, slow with TensorFlow loaded (benchmarks/RESULTS.md, Engine
    vs peer: cold-run overheads).  Only for console entry points, after every output file is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def entry() -> None:
    """The ``nst-stylize`` console script: :func:`main`, then :func:`exit_fast`."""
    exit_fast(main())


if __name__ == "__main__":
    entry()
