"""--require_gpu: a GPU job never runs at CPU speed in silence (this machine has no GPU)."""

from __future__ import annotations

import pytest
from pipeline_helpers import FAST, copy_images, write_csv

from nst_core import StyleOptions
from pipeline.resources import WorkerResources, WorkerSetupError
from pipeline.run import main
from pipeline.transforms import failure_reason


def test_a_local_run_requiring_a_gpu_fails_before_any_work_naming_devices_and_driver(tmp_path, image_dir, capsys):
    root = copy_images(image_dir, tmp_path / "cat")
    write_csv(root / "m.csv", ["id,content,style", "a,content/c1.jpg,style/s1.png"])
    out = tmp_path / "out"
    assert main(["--manifest", str(root / "m.csv"), "--output", str(out), *FAST, "--require_gpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--require_gpu: TensorFlow sees no GPU" in line and "CPU:0" in line and "driver: " in line
    assert not out.exists()


def test_a_worker_without_its_gpu_fails_its_bundle_not_its_pairs():
    res = WorkerResources(StyleOptions(), require_gpu=True)
    with pytest.raises(WorkerSetupError, match="sees no GPU") as err:
        res.stylizer()
    with pytest.raises(WorkerSetupError):  # raised again: never a row's error
        failure_reason(err.value, "pair")
    with pytest.raises(WorkerSetupError):  # and every time, not only the first
        res.network("/nope.keras")
    assert WorkerResources(StyleOptions()).check_devices() == ()  # without the flag: CPU, logged once


def test_a_dataflow_job_requiring_a_gpu_must_ask_for_one(tmp_path, capsys):
    m = write_csv(tmp_path / "m.csv", ["content,style", "gs://b/c.jpg,gs://b/s.jpg"])
    base = ["--manifest", str(m), "--output", "gs://b/out", "--runner=DataflowRunner", "--project=p",
            "--region=us-central1", "--temp_location=gs://b/tmp", "--dry_run=True", "--require_gpu"]
    assert main(base) == 2
    assert "the job asks for no GPU" in capsys.readouterr().err
