"""The pipeline's Beam graph builds for DataflowRunner offline, with the GPU settings of each profile.

Nothing is submitted: the run goes through Beam's ``--dry_run`` (DataflowRunner returns before it
creates an API client), and the API client class is replaced by one that fails the test if touched.
The job's Dataflow ``Environment`` (machine type, service options, experiments, harness threads,
worker container) is then built from the options exactly as Beam would send it.
"""

from __future__ import annotations

import apache_beam as beam
import deploy_paths  # noqa: F401  (puts deploy/ on sys.path)
import flex_main
import gpu_profiles
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.internal import apiclient

from pipeline import run as pipeline_run
from pipeline.options import NSTPipelineOptions

IMAGE = "us-central1-docker.pkg.dev/nst-example-project/nst/worker:2026-01-31"
JOB = "nst-nightly-20260131"


@pytest.fixture(autouse=True)
def no_dataflow_api(monkeypatch):
    class Forbidden:
        def __init__(self, *a, **k):
            raise AssertionError("the test tried to talk to the Dataflow API")

    monkeypatch.setattr(apiclient, "DataflowApplicationClient", Forbidden)


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("id,content,style\nsku-1,gs://nst-bucket/c/1.jpg,gs://nst-bucket/s/starry.jpg\n")
    return path


def dataflow_args(profile: gpu_profiles.GpuProfile, manifest) -> list[str]:
    launch = [f"--manifest={manifest}", "--output=gs://nst-bucket/runs/2026-01-31", "--runner=DataflowRunner",
              "--project=nst-example-project", "--region=us-central1", "--temp_location=gs://nst-bucket/tmp",
              f"--job_name={JOB}", "--service_account_email=nst-worker@nst-example-project.iam.gserviceaccount.com",
              "--dry_run=True", "--size=768"]
    return flex_main.with_defaults(launch + profile.beam_args(), {"NST_WORKER_IMAGE": IMAGE})


def job_environment(job):
    return apiclient.Environment(packages=[], options=job.options, environment_version="8",
                                 proto_pipeline_staged_url="gs://nst-bucket/tmp/pipeline.pb",
                                 proto_pipeline=job.proto_pipeline).proto


@pytest.mark.parametrize("name", sorted(gpu_profiles.PROFILES))
def test_graph_and_gpu_options_for_dataflow(name, manifest):
    profile = gpu_profiles.PROFILES[name]
    result = pipeline_run.run(dataflow_args(profile, manifest))  # the pipeline's own run(), as the launcher calls it
    job = result.job
    assert job.proto.name == JOB

    transforms = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    for step in ("ManifestPath", "ReadManifest", "SplitRows", "SpreadPairs", "Stylize", "WriteRunFiles/GroupBySheet",
                 "WriteRunFiles"):
        assert step in transforms

    env = job_environment(job)
    assert list(env.service_options) == [profile.service_option()]
    assert "install-nvidia-driver" in env.service_options[0]
    experiments = set(env.experiments)
    assert "use_runner_v2" in experiments
    assert ("no_use_multiple_sdk_containers" in experiments) == (not profile.mps)
    (pool,) = env.worker_pools
    assert pool.machine_type == profile.machine_type
    assert pool.num_threads_per_worker == profile.harness_threads
    images = [c.container_image for c in pool.sdk_harness_container_images]
    assert images == [IMAGE]

    for env_proto in job.proto_pipeline.components.environments.values():
        if env_proto.urn == "beam:env:docker:v1":
            assert beam_runner_api_pb2.DockerPayload.FromString(env_proto.payload).container_image == IMAGE

    opts = job.options.view_as(NSTPipelineOptions)
    assert opts.style_options().size == 768 and opts.style_options().precision == "auto"  # float16 on the GPU


def test_profiles_follow_the_dataflow_gpu_rules():
    """Dataflow's own rules for GPU workers, which a new or edited profile could break."""
    for p in gpu_profiles.PROFILES.values():
        if p.accelerator == "nvidia-l4":
            assert p.machine_type.startswith("g2-"), "L4 GPUs come only with G2 machine types"
        if p.accelerator == "nvidia-tesla-t4":
            assert p.machine_type.startswith("n1-"), "T4 GPUs attach to N1 machine types"
        args = p.beam_args()
        one_process = "--experiments=no_use_multiple_sdk_containers" in args
        # without MPS, one SDK process per VM, or every process loads VGG19 onto the one GPU
        assert one_process != p.mps, p.name
        if p.mps:
            assert "use_nvidia_mps" in p.service_option() and p.count == 1, "MPS shares one GPU per VM"
    assert any(p.mps for p in gpu_profiles.PROFILES.values())


def test_graph_from_gcs_inputs_in_cross_mode_for_dataflow():
    """The production shape (every path on gs://), built with beam.Pipeline(DataflowRunner) without running."""
    options = PipelineOptions(["--runner=DataflowRunner", "--project=nst-example-project", "--region=us-central1",
                               "--temp_location=gs://nst-bucket/tmp", "--contents=gs://nst-bucket/products/*.jpg",
                               "--styles=gs://nst-bucket/styles/*.jpg", "--output=gs://nst-bucket/runs/2026-01-31",
                               "--dry_run=True",  # also keeps Beam's option validation from probing GCS
                               *gpu_profiles.DEFAULT.beam_args()])
    opts = options.view_as(NSTPipelineOptions)
    p = beam.Pipeline(options=options)
    pipeline_run.build(p, opts, opts.style_options())
    proto = p.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert {"Globs", "CrossProduct", "Stylize", "WriteRunFiles"} <= names
    assert "ReadManifest" not in names


def test_flex_defaults_never_override_the_launch():
    env = {"NST_WORKER_IMAGE": IMAGE}
    args = flex_main.with_defaults(["--output=gs://b/o"], env)
    assert f"--sdk_container_image={IMAGE}" in args
    assert "--number_of_worker_harness_threads=2" in args and "--experiments=use_runner_v2" in args
    mine = ["--sdk_container_image=other:1", "--number_of_worker_harness_threads=4", "--experiments=use_runner_v2",
            "--disk_size_gb=80", "--machine_type=n1-standard-4"]  # a CPU launch, on purpose
    assert flex_main.with_defaults(mine, env) == mine
    assert flex_main.with_defaults(["--experiments", "a,use_runner_v2", "--machine_type=n1-standard-4"], {}) == [
        "--experiments", "a,use_runner_v2", "--machine_type=n1-standard-4", "--number_of_worker_harness_threads=2",
        f"--disk_size_gb={gpu_profiles.DISK_SIZE_GB}"]
    assert not any(a.startswith("--sdk_container_image") for a in flex_main.with_defaults([], {}))


def test_a_launch_that_names_no_gpu_gets_the_default_profile_and_require_gpu():
    bare = flex_main.with_defaults(["--output=gs://b/o"], {})
    d = gpu_profiles.DEFAULT
    assert f"--machine_type={d.machine_type}" in bare and f"--dataflow_service_options={d.service_option()}" in bare
    assert "--require_gpu" in bare and f"--disk_size_gb={gpu_profiles.DISK_SIZE_GB}" in bare
    given = flex_main.with_defaults(["--experiments=worker_accelerator=type:nvidia-tesla-t4;count:1;"
                                     "install-nvidia-driver:5xx", "--machine_type=n1-standard-8"], {})
    assert "--require_gpu" in given and not any(a.startswith("--dataflow_service_options") for a in given)


def test_every_profile_and_the_workflow_set_a_disk_and_a_pinned_driver():
    import yaml

    for p in gpu_profiles.PROFILES.values():
        disk = [a for a in p.beam_args() if a.startswith("--disk_size_gb=")]
        assert disk and int(disk[0].split("=")[1]) >= 50 and "--disk-size-gb=50" in p.gcloud_args()
        assert "install-nvidia-driver:5xx" in p.service_option() and "--require_gpu" in p.beam_args()
    wf = yaml.safe_load((deploy_paths.DEPLOY / "nightly.workflow.yaml").read_text())
    assigns = {k: v for item in wf["main"]["steps"][0]["init"]["assign"] for k, v in item.items()}
    assert assigns["disk_size_gb"] >= 50
    launch = next(s["launch"] for s in wf["main"]["steps"] if "launch" in s)["try"]["args"]["body"]["launchParameter"]
    assert launch["environment"]["diskSizeGb"] == "${disk_size_gb}"
    assert launch["parameters"]["require_gpu"] == "true"
    for prof in assigns["profiles"].values():
        assert "install-nvidia-driver:5xx" in prof["additionalExperiments"][0]


def test_the_flex_launchers_own_arguments_parse():
    """What the Flex launcher passes besides the template parameters (the job's environment) must get past
    the pipeline's strict unknown-flag check."""
    launcher = ["--runner=DataflowRunner", "--project=p", "--region=us-central1", "--job_name=nst-nightly-1",
                "--template_location=gs://b/templates/x.json", "--staging_location=gs://b/staging",
                "--temp_location=gs://b/tmp", "--labels={\"app\":\"nst-catalog\"}", "--labels=run-date=2026-01-31",
                "--service_account_email=w@p.iam.gserviceaccount.com", "--max_num_workers=4", "--num_workers=1",
                "--machine_type=g2-standard-4", "--disk_size_gb=50", "--no_use_public_ips",
                "--subnetwork=regions/us-central1/subnetworks/default", "--experiments=use_runner_v2",
                "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver:5xx",
                "--sdk_container_image=" + IMAGE, "--autoscaling_algorithm=THROUGHPUT_BASED"]
    params = ["--output=gs://b/o", "--manifest=gs://b/m.csv", "--mode=optimize", "--require_gpu=true"]
    options = PipelineOptions(flex_main.with_defaults(launcher + params, {}))
    assert pipeline_run.unknown_flags(options) == []


def test_flex_main_reports_bad_usage_before_anything_runs(capsys):
    assert flex_main.main(["--runner=DataflowRunner", "--dry_run=True"]) == 2
    assert "--output" in capsys.readouterr().err


def test_accelerator_hint_goes_on_the_stylizing_steps_alone(manifest):
    gpu = "type:nvidia-l4;count:1;install-nvidia-driver"
    args = [f"--manifest={manifest}", "--output=gs://nst-bucket/runs/x", "--runner=DataflowRunner",
            "--project=nst-example-project", "--region=us-central1", "--temp_location=gs://nst-bucket/tmp",
            "--dry_run=True", "--mode=auto", f"--accelerator={gpu}"]
    job = pipeline_run.run(args).job
    comps = job.proto_pipeline.components
    hinted = set()
    for t in comps.transforms.values():
        hints = comps.environments[t.environment_id].resource_hints if t.environment_id else {}
        if any(gpu.encode() in v for v in hints.values()):
            hinted.add(t.unique_name.split("/")[0])
    assert hinted == {"Stylize", "StyleNetworks", "FastStylize"}
