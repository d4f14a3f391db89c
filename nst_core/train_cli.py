"""nst-train-style: train a fast (feed-forward) style network for one style image.

Exit codes as nst-stylize: 0 done; 2 usage error or bad input (one line naming the input and the
reason); 1 anything else (missing weights, numerical failure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nst_core import images, options, outfiles, progress, weights
from nst_core.cli import EXIT_OK, exit_fast, report_error
from nst_core.errors import InputError, NSTError

# The training options given as engine flags (--size and --seed are this tool's own flags).
LOSS_FLAGS = tuple(f for f in options.TRAINING_FIELDS if f not in ("size", "seed"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-train-style",
        description="Train a feed-forward style network (Johnson et al.) with the engine's Gatys losses; "
                    "then `nst-stylize --model STYLE.keras --content C --output O` stylises in one pass.",
        epilog="example: nst-train-style --style starry.jpg --contents 'photos/*.jpg' --output starry.keras "
               "--steps 450 --batch-size 4 --crop 128")
    p.add_argument("--style", "--si", dest="style", required=True, help="style image")
    p.add_argument("--contents", action="append", required=True,
                   help="content images: a glob pattern (quote it), a folder or a file; repeat for more")
    p.add_argument("--output", "--o", dest="output", required=True, help="model file to write (.keras)")
    p.add_argument("--steps", type=int, default=options.TRAIN_STEPS,
                   help=f"training steps (default: {options.TRAIN_STEPS})")
    p.add_argument("--batch-size", type=int, default=4, help="crops per step (default: 4)")
    p.add_argument("--crop", type=int, default=options.TRAIN_CROP,
                   help=f"side of the random square crops, a multiple of 4 (default: {options.TRAIN_CROP})")
    p.add_argument("--size", type=int, default=512, help="longest side of the images the network is meant "
                   "for: contents are scaled to it before cropping and the style Grams are taken at that "
                   "scale (default: 512)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    p.add_argument("--style-boost", type=float, default=options.TRAIN_STYLE_BOOST,
                   help="training multiplies the style weight by this: a network trades content for style "
                        "differently from an optimised image of the same weights, so the style weight that suits "
                        f"optimize mode is not the one that suits training (default: {options.TRAIN_STYLE_BOOST})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights and crops (default: 0)")
    p.add_argument("--width", type=int, default=32, help="channels of the network's first layer (default: 32)")
    p.add_argument("--blocks", type=int, default=5, help="residual blocks (default: 5)")
    p.add_argument("--skip", action="store_true",
                   help="output = sigmoid(logit(input) + residual), starting as the identity (default: the plain "
                        "Johnson output, which measured better on contents unlike the training photos)")
    p.add_argument("--trace", metavar="PATH", help="loss trace JSON (default: <output>.trace.json)")
    p.add_argument("--log-every", type=int, default=1, help="keep every Nth step in the trace (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    losses = p.add_argument_group("loss options (as nst-stylize)")
    options.add_arguments(losses, defaults_none=True,
                          skip=tuple(s.name for s in options.specs() if s.name not in LOSS_FLAGS))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(options.join_negative_values(sys.argv[1:] if argv is None else argv))
    prog = "nst-train-style"
    try:
        given = {k: v for k, v in vars(args).items() if k in LOSS_FLAGS and v is not None}
        opts = options.StyleOptions.from_dict({**given, "size": args.size, "seed": args.seed})
        weights.check_source(opts.weights)
        out = Path(args.output)
        if out.suffix != ".keras":
            raise InputError(f"{out}: the model file must end in .keras")
        trace_path = Path(args.trace) if args.trace else out.with_name(out.stem + ".trace.json")
        existing = [p for p, what in ((out, "--output"), (trace_path, "--trace")) if outfiles.check_output(p, what)]
        images.load_image(args.style, args.style)

        from nst_core import fast  # TensorFlow is imported here, after the cheap checks

        cfg = fast.TrainConfig(steps=args.steps, batch_size=args.batch_size, crop=args.crop,
                               learning_rate=args.learning_rate, log_every=max(1, args.log_every),
                               style_boost=args.style_boost)
        arch = fast.Architecture(width=args.width, blocks=args.blocks, skip=args.skip)
        contents = fast.expand_contents(args.contents)
        for c in contents:
            images.load_image(c, c)
    except NSTError as e:  # bad input, or no weights found ('auto'): a setup problem
        return report_error(prog, e)
    if existing:
        print(f"{prog}: overwriting {', '.join(map(str, existing))}", file=sys.stderr)

    bar = progress.ProgressBar(cfg.steps, quiet=args.quiet, lines=20)

    def on_step(entry: dict) -> None:
        bar.update(entry["step"], progress.losses_text(entry, total=True))

    try:
        model, figures = fast.train_style_network(args.style, contents, opts, cfg, arch=arch,
                                                  style_name=args.style, progress=on_step)
        bar.close()
        fast.save_style_network(model, out)
    except NSTError as e:
        return report_error(prog, e, bar.close)
    outfiles.write_atomic(trace_path, json.dumps(figures, indent=1).encode())
    if not args.quiet:
        f, i = figures["final_losses_mean_last_10pct"], figures["initial_losses"]
        print(f"wrote {out} ({figures['steps']} steps x {figures['batch_size']} crops of {figures['crop']}px in "
              f"{figures['seconds']:.1f}s, {figures['precision']}; loss {i['total']:.4g} -> {f['total']:.4g}, "
              f"content {f['content']:.3g} style {f['style']:.3g}); trace {trace_path}", file=sys.stderr)
    return EXIT_OK


def entry() -> None:
    """The ``nst-train-style`` console script: :func:`main`, then a fast exit (see cli.exit_fast)."""
    exit_fast(main())


if __name__ == "__main__":
    entry()
