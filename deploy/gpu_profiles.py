"""The GPU worker set-ups this project supports on Dataflow, as pipeline flags and as gcloud flags.

    python deploy/gpu_profiles.py l4          # print the gcloud flags of a profile
    python deploy/gpu_profiles.py l4 --beam   # the same as Beam pipeline options (a direct DataflowRunner run)

Per Dataflow's GPU documentation:

* the GPU and its driver come from the ``worker_accelerator`` service option,
  ``type:<gpu>;count:<n>;install-nvidia-driver:5xx``; an L4 needs a G2 machine type, a T4 an N1 one.
  TensorFlow 2.21's CUDA 12 wheels need a 525+ driver: ``:5xx`` pins the 5xx branch, as Beam's own
  Dataflow GPU examples do (a plain ``install-nvidia-driver`` takes Dataflow's default branch);
* the boot disk holds the OS, the image (TensorFlow with CUDA: several GB, pulled once per VM) and
  the logs: Dataflow's default of 25 GB is too small, ``--disk_size_gb`` (:data:`DISK_SIZE_GB`) is set;
* every profile sets the pipeline's ``--require_gpu``: a worker that sees no GPU fails instead of
  running at CPU speed on a GPU-priced VM;
* Python runs one SDK process per vCPU by default and every process would load VGG19 onto the
  GPU, so either ``no_use_multiple_sdk_containers`` (one process per VM) or NVIDIA MPS
  (``use_nvidia_mps`` in the service option, GPU count 1, many processes sharing the GPU;
  ``no_use_multiple_sdk_containers`` must then not be set);
* TensorFlow must grow GPU memory on demand: ``nst_core.features.configure_devices()`` turns memory
  growth on and the image sets ``TF_FORCE_GPU_ALLOW_GROWTH=true`` as well;
* ``number_of_worker_harness_threads``: 2, see deploy/flex_main.py.

The engine's ``--precision auto`` (the default) computes in mixed float16 on a GPU; L4 and T4 both
have float16 tensor cores.  ``--precision float32`` trades speed for bit-for-bit parity with CPU runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

DRIVER = "install-nvidia-driver:5xx"
DISK_SIZE_GB = 50  # Google's GPU samples' size; the image is several GB, the default disk 25 GB


@dataclass(frozen=True)
class GpuProfile:
    name: str
    machine_type: str
    accelerator: str
    count: int = 1
    mps: bool = False
    harness_threads: int = 2
    note: str = ""

    def service_option(self) -> str:
        parts = [f"type:{self.accelerator}", f"count:{self.count}", DRIVER]
        if self.mps:
            parts.append("use_nvidia_mps")
        return "worker_accelerator=" + ";".join(parts)

    def experiments(self) -> list[str]:
        return [] if self.mps else ["no_use_multiple_sdk_containers"]

    def beam_args(self) -> list[str]:
        """Pipeline options for a DataflowRunner run started from Python (not through the template)."""
        args = [f"--machine_type={self.machine_type}", f"--dataflow_service_options={self.service_option()}",
                f"--disk_size_gb={DISK_SIZE_GB}", f"--number_of_worker_harness_threads={self.harness_threads}",
                "--experiments=use_runner_v2", "--require_gpu"]
        return args + [f"--experiments={e}" for e in self.experiments()]

    def gcloud_args(self) -> list[str]:
        """Flags of ``gcloud dataflow flex-template build/run`` (service options go in as experiments there);
        the template parameter ``require_gpu=true`` goes with them (``--parameters``)."""
        return [f"--worker-machine-type={self.machine_type}",
                "--additional-experiments=" + ",".join([self.service_option(), *self.experiments()]),
                f"--disk-size-gb={DISK_SIZE_GB}"]


PROFILES: dict[str, GpuProfile] = {p.name: p for p in (
    GpuProfile("l4", "g2-standard-4", "nvidia-l4",
               note="1x L4 (24 GB), 4 vCPU, 16 GB RAM; one SDK process per VM. The default."),
    GpuProfile("l4-mps", "g2-standard-8", "nvidia-l4", mps=True,
               note="1x L4 shared by 8 SDK processes through NVIDIA MPS: more pairs in flight per GPU."),
    GpuProfile("t4", "n1-standard-8", "nvidia-tesla-t4",
               note="1x T4 (16 GB), 8 vCPU, 30 GB RAM; one SDK process per VM. Where L4s are scarce."),
)}
DEFAULT = PROFILES["l4"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("profile", choices=sorted(PROFILES))
    p.add_argument("--beam", action="store_true", help="print Beam pipeline options instead of gcloud flags")
    args = p.parse_args(argv)
    prof = PROFILES[args.profile]
    print(" ".join(f"'{a}'" if ";" in a else a for a in (prof.beam_args() if args.beam else prof.gcloud_args())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
