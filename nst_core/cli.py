"""nst-stylize: one pair from the command line, a thin shell over :class:`nst_core.Stylizer`.

Exit codes: 0 done; 2 usage error or bad input (one line naming the input and the reason);
1 anything else (missing weights, numerical failure).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nst_core import images, options
from nst_core.errors import InputError, NSTError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-stylize", description="Stylise one content image with one or more style images (Gatys et al.).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: nst-stylize --ci cat.jpg --si starry.jpg --o out/ --size 512")
    p.add_argument("--content", "--ci", dest="content", required=True, help="content image")
    p.add_argument("--style", "--si", dest="style", action="append",
                   help="style image (repeat for a blend of several); required unless --model is given")
    p.add_argument("--model", metavar="STYLE.keras",
                   help="fast mode: stylise in one pass with a style network trained by nst-train-style "
                        "(takes the place of --style; of the engine options only --size, --precision and "
                        "--weights apply; --size defaults to the network's training size)")
    p.add_argument("--style-weights", dest="style_weights",
                   help="blend weights of the style images, comma separated (alias of --style-blend)")
    p.add_argument("--output", "--o", dest="output", required=True,
                   help="output PNG, or a folder (gets <content>_<style>.png)")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write the image every N steps as <output>.stepNNNN.png")
    p.add_argument("--metrics", metavar="PATH", help="write the metrics JSON (losses, trace, options) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    engine = p.add_argument_group("engine options")
    options.add_arguments(engine, defaults_none=True)
    return p


def output_path(output: str, content: str, styles: list[str]) -> Path:
    out = Path(output)
    if output.endswith(("/", "\\")) or out.is_dir():
        name = Path(content).stem + "_" + "+".join(Path(s).stem for s in styles) + ".png"
        return out / name
    return out


class Progress:
    """A one-line progress bar on stderr with the current losses."""

    def __init__(self, total: int, quiet: bool, save_every: int, out: Path):
        self.total, self.quiet, self.save_every, self.out = total, quiet, save_every, out
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, entry: dict, image) -> None:
        step = entry["step"]
        if self.save_every and step % self.save_every == 0:
            path = self.out.with_name(f"{self.out.stem}.step{step:04d}.png")
            path.write_bytes(images.encode_png(image))
        if self.quiet:
            return
        if not self.tty and step % max(1, self.total // 10) and step != self.total:
            return
        width = 24
        done = int(width * step / max(1, self.total))
        line = (f"[{'#' * done}{'.' * (width - done)}] {step}/{self.total} {entry['width']}x{entry['height']} "
                f"content {entry['content']:.3f} style {entry['style']:.4f} tv {entry['tv']:.4f} "
                f"{time.perf_counter() - self.t0:.1f}s")
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def main_model(args: argparse.Namespace) -> int:
    """nst-stylize --model: one forward pass of a trained style network."""
    try:
        if args.style:
            raise InputError("give --style (optimise the image) or --model (a trained network), not both")
        options.from_namespace(args)  # validates every given engine option
        content = images.load_image(args.content, args.content)
        from nst_core import fast  # TensorFlow is imported here, after the cheap checks

        fast.read_metadata(args.model)  # refuses a file that is not ours before Keras opens it
        out = output_path(args.output, args.content, [args.model])
        if not out.parent.exists():
            raise InputError(f"{out}: the output folder {out.parent} does not exist")
        network = fast.load_style_network(args.model)
        result = fast.stylize_with_network(network, content, args.size, content_name=args.content,
                                           precision=args.precision)
    except InputError as e:
        print(f"nst-stylize: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NSTError as e:
        print(f"nst-stylize: failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    result.save(out)
    if args.metrics:
        result.save_metrics(args.metrics)
    if not args.quiet:
        losses = " ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
        print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}, fast mode with {args.model}, "
              f"{result.seconds:.2f}s, {result.precision}; {losses})", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model is not None:
        return main_model(args)
    if not args.style:
        parser.error("the following arguments are required: --style/--si (or --model)")
    try:
        if args.style_weights is not None:
            if args.style_blend is not None:
                raise InputError("give --style-weights or --style-blend, not both")
            args.style_blend = args.style_weights
        opts = options.from_namespace(args)
        content = images.load_image(args.content, args.content)
        styles = [images.load_image(s, s) for s in args.style]
        if opts.style_blend and len(opts.style_blend) != len(styles):
            raise InputError(f"--style-weights: {len(opts.style_blend)} weights for {len(styles)} style images")
        out = output_path(args.output, args.content, args.style)
        if not out.parent.exists():
            raise InputError(f"{out}: the output folder {out.parent} does not exist")
    except InputError as e:
        print(f"nst-stylize: error: {e}", file=sys.stderr)
        return EXIT_USAGE

    from nst_core.stylizer import Stylizer

    total = sum(steps for _, steps in opts.schedule())
    progress = Progress(total, args.quiet, args.save_every, out)
    try:
        stylizer = Stylizer(opts)
        result = stylizer.stylize(content, styles, opts, progress=progress, content_name=args.content,
                                  style_names=args.style)
    except InputError as e:
        progress.close()
        print(f"nst-stylize: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NSTError as e:
        progress.close()
        print(f"nst-stylize: failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    progress.close()
    result.save(out)
    if args.metrics:
        result.save_metrics(args.metrics)
    if not args.quiet:
        losses = " ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
        print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}, {result.steps} steps, "
              f"{result.seconds:.1f}s, {result.precision}; {losses})", file=sys.stderr)
    return EXIT_OK


def exit_fast(rc: int) -> None:
    """Exit without the interpreter's teardown: with TensorFlow loaded it took ~0.6 s of a 14 s
    run (measured at 256px).  Only for console entry points, after every output file is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def entry() -> None:
    """The ``nst-stylize`` console script: :func:`main`, then :func:`exit_fast`."""
    exit_fast(main())


if __name__ == "__main__":
    entry()
