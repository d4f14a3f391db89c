"""deploy/README.md, the Dockerfile and the nightly workflow agree with each other and with the code.

The README is what a GCP user follows line by line: every shell block must parse, every variable it
uses must be one of the placeholders defined once at the top, and its GPU flags must be the profiles'.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import deploy_paths  # noqa: F401  (puts deploy/ on sys.path)
import gpu_profiles
import pytest
import yaml
from deploy_paths import DEPLOY, README, ROOT

SHELL_VAR = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_readme_placeholders_are_defined_once_at_the_top():
    blocks = shell_blocks(README)
    top, rest = blocks[0], blocks[1:]
    defined = re.findall(r"^export ([A-Z][A-Z0-9_]*)=", top, re.M)
    assert len(defined) == len(set(defined)), "a placeholder is defined twice"
    for name in ("PROJECT", "REGION", "BUCKET", "REPO", "IMAGE", "TEMPLATE", "WORKER_SA", "LAUNCHER_SA"):
        assert name in defined
    for block in rest:
        assert not re.search(r"^\s*(export\s+)?[A-Z][A-Z0-9_]*=", block, re.M), f"redefinition in:\n{block}"
        used = set(SHELL_VAR.findall(block))
        assert used <= set(defined), f"undefined: {sorted(used - set(defined))}"
    # a variable in the top block only uses variables defined above it
    seen: set[str] = set()
    for line in top.splitlines():
        m = re.match(r"export ([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            assert set(SHELL_VAR.findall(m.group(2))) <= seen, line
            seen.add(m.group(1))
    # prose mentions of $VARS are placeholders too
    assert set(SHELL_VAR.findall(re.sub(r"```.*?```", "", README, flags=re.S))) <= set(defined)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_readme_shell_blocks_parse():
    for block in shell_blocks(README):
        proc = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert proc.returncode == 0, f"{proc.stderr}\n{block}"


def test_readme_gpu_flags_are_the_profiles():
    pairs = re.findall(r"--worker-machine-type=(\S+) \\\n\s*--additional-experiments='([^']+)'", README)
    assert pairs, "the by-hand run shows the GPU flags"
    profiles = {(p.machine_type, ",".join([p.service_option(), *p.experiments()])) for p in
                gpu_profiles.PROFILES.values()}
    for pair in pairs:
        assert pair in profiles
    for p in gpu_profiles.PROFILES.values():  # the table lists every profile exactly
        row = f"| `{p.machine_type}` | `{','.join([p.service_option(), *p.experiments()])}` |"
        assert row in README, row
        assert f"`{p.name}`" in README
    assert "GPU_PROFILE=l4 " in README and gpu_profiles.DEFAULT.name == "l4"


def test_workflow_profiles_mirror_gpu_profiles():
    wf = yaml.safe_load((DEPLOY / "nightly.workflow.yaml").read_text())
    assigns = {k: v for item in wf["main"]["steps"][0]["init"]["assign"] for k, v in item.items()}
    assert set(assigns["profiles"]) == set(gpu_profiles.PROFILES)
    for name, p in gpu_profiles.PROFILES.items():
        entry = assigns["profiles"][name]
        assert entry["machineType"] == p.machine_type
        assert entry["additionalExperiments"] == [p.service_option(), *p.experiments()]


def test_workflow_names_the_run_and_reads_only_configured_env():
    text = (DEPLOY / "nightly.workflow.yaml").read_text()
    wf = yaml.safe_load(text)
    assert wf["main"]["params"] == ["args"]
    used = set(re.findall(r'sys\.get_env\("([A-Z_]+)"\)', text)) - {"GOOGLE_CLOUD_PROJECT_ID", "GOOGLE_CLOUD_LOCATION"}
    m = re.search(r"--set-env-vars=(\S+)", README)
    assert m, "the README deploys the workflow with its configuration"
    configured = {kv.split("=", 1)[0] for kv in m.group(1).split(",")}
    assert used == configured
    assert '"/runs/" + run_date' in text and 'text.replace_all(run_date, "-", "")' in text
    assert "flexTemplates:launch" in text and "e.code == 409" in text
    # the workflow passes only template parameters that exist
    import json

    params = {p["name"] for p in json.loads((DEPLOY / "metadata.json").read_text())["parameters"]}
    launch = next(s["launch"] for s in wf["main"]["steps"] if "launch" in s)
    assert set(launch["try"]["args"]["body"]["launchParameter"]["parameters"]) <= params


def test_dockerfile_copies_what_exists_and_bakes_the_weights():
    text = (DEPLOY / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
    py_file = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", text).group(1)
    assert py_file == "/template/deploy/flex_main.py" and (DEPLOY / "flex_main.py").is_file()
    assert "COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam" in text
    assert "/opt/google/dataflow/python_template_launcher" in text
    assert text.rstrip().endswith('ENTRYPOINT ["/opt/apache/beam/boot"]')
    assert "ENV NST_CACHE_DIR=/opt/nst/cache" in text and "python -m nst_core.weights fetch" in text
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in text
    tags = re.findall(r"^ARG (\w+_(?:TAG|VERSION))=(\S+)$", text, re.M)
    assert tags and all(v and v != "latest" for _, v in tags), tags  # every base image pinned
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for path in ("setup.py", "README.md", "requirements.txt", "nst_core/", "pipeline/", "deploy/flex_main.py",
                 "deploy/requirements.txt"):
        assert f"!{path}" in ignore


def test_no_weight_download_hosts_or_key_files_in_deploy():
    for path in DEPLOY.iterdir():
        if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".json", ""}:
            text = path.read_text()
            assert "storage.googleapis.com/tensorflow" not in text and "keras-applications" not in text, path
            assert "keys create" not in text and "GOOGLE_APPLICATION_CREDENTIALS" not in text, path


def test_workflow_calls_retry():
    """Every Dataflow or Storage call of the workflow retries 429s and 5xx: one during hours of polling must
    not fail the night."""
    wf = yaml.safe_load((DEPLOY / "nightly.workflow.yaml").read_text())
    calls = 0
    for step in wf["main"]["steps"]:
        (name, body), = step.items()
        inner = body.get("try", body)
        if str(inner.get("call", "")).startswith(("http.", "googleapis.")):
            calls += 1
            assert body.get("retry") == "${http.default_retry}", name
    assert calls >= 3  # launch, poll, summary


def test_readme_template_parameters_exist():
    import json

    params = {p["name"] for p in json.loads((DEPLOY / "metadata.json").read_text())["parameters"]}
    for block in shell_blocks(README):
        for group in re.findall(r"--parameters=(?:\^~\^)?(\S+)", block):
            sep = "~" if "~" in group else ","
            names = {kv.split("=", 1)[0] for kv in group.split(sep) if "=" in kv}
            assert names <= params, sorted(names - params)
