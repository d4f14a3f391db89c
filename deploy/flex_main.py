"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): the pipeline's own ``run()`` plus worker defaults.

The Flex launcher runs ``python flex_main.py --name=value ...`` with the template parameters and the
job's Dataflow options.  This adds what every launch of this image needs, unless the launch gave it:

* ``--sdk_container_image``: this same image (its URI is baked in at build time as ``NST_WORKER_IMAGE``),
  so the workers get TensorFlow with CUDA, the project and the VGG19 weights;
* ``--number_of_worker_harness_threads``: ``NST_HARNESS_THREADS`` (default 2).  A worker process
  stylises one pair at a time (the engine is shared and serialised per process); a second thread
  overlaps the next pair's reads and the previous pair's writes with the GPU work.  More threads
  only queue, and add memory;
* ``--experiments=use_runner_v2``: custom containers need Dataflow Runner v2 (the Python default);
* ``--disk_size_gb``: 50 (the image alone is several GB; Dataflow's default disk is 25 GB);
* the GPU: a launch that names neither a machine type nor a ``worker_accelerator`` (from the console,
  or a command that forgot them) gets the default profile of ``gpu_profiles.py`` (machine type,
  accelerator with its pinned driver, one SDK process per VM); a launch with an accelerator gets
  ``--require_gpu``, so a worker without a usable GPU fails loudly instead of running on its CPU.

It submits the job and returns; it does not wait for the job (the launcher VM would idle for hours).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HARNESS_THREADS = "2"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_profiles, beside this file in the image too
import gpu_profiles  # noqa: E402


def given_flags(argv: Sequence[str]) -> set[str]:
    """Names of the ``--flags`` in argv, in Beam's underscore spelling."""
    return {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}


def experiments(argv: Sequence[str]) -> list[str]:
    out, it = [], iter(argv)
    for a in it:
        if a.startswith(("--experiments=", "--experiment=")):
            out += a.split("=", 1)[1].split(",")
        elif a in ("--experiments", "--experiment"):
            out += next(it, "").split(",")
    return out


def asks_for_gpu(argv: Sequence[str]) -> bool:
    """Whether the launch requests a GPU (a worker_accelerator service option or experiment, or --accelerator)."""
    return any("worker_accelerator=" in a or a.startswith("--accelerator") for a in argv)


def with_defaults(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> list[str]:
    args = list(argv)
    given = given_flags(args)
    image = env.get("NST_WORKER_IMAGE", "").strip()
    if image and not given & {"sdk_container_image", "worker_harness_container_image"}:
        args.append(f"--sdk_container_image={image}")
    if "number_of_worker_harness_threads" not in given:
        args.append(f"--number_of_worker_harness_threads={env.get('NST_HARNESS_THREADS') or DEFAULT_HARNESS_THREADS}")
    if "use_runner_v2" not in experiments(args):
        args.append("--experiments=use_runner_v2")
    if "disk_size_gb" not in given:
        args.append(f"--disk_size_gb={gpu_profiles.DISK_SIZE_GB}")
    if not asks_for_gpu(args) and not given & {"machine_type", "worker_machine_type"}:
        profile = gpu_profiles.DEFAULT
        args += [f"--machine_type={profile.machine_type}", f"--dataflow_service_options={profile.service_option()}",
                 *(f"--experiments={e}" for e in profile.experiments() if e not in experiments(args))]
    if asks_for_gpu(args) and "require_gpu" not in given:
        args.append("--require_gpu")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pipeline.run import UsageError, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = with_defaults(sys.argv[1:] if argv is None else argv)
    logging.getLogger("nst.flex").info("launching with %s", " ".join(args))
    try:
        run(args, wait=False)
    except UsageError as e:
        print(f"nst flex template: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
