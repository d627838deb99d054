"""The DVC pipeline in a fresh copy of the project, with and without git."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from prefix_sharing.conversations import iter_records
from prefix_sharing.datafile import bundled_path

pytestmark = pytest.mark.slow

ALL_STAGES = {
    "traces@multi_turn", "traces@single_turn", "tokenize@multi_turn",
    "tokenize@single_turn", "replay", "check", "plots",
    "traces_sweep@multi_turn", "traces_sweep@single_turn",
    "tokenize_sweep@multi_turn", "tokenize_sweep@single_turn", "sweep",
    "replay_v1", "compare", "sweep_v1", "compare_sweep",
}


def project_files():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return [name for name in listed if name and (ROOT / name).is_file()]


def fresh_copy(dest, with_git):
    """The project as a new user gets it, with the bundled data in place."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    shutil.copy(bundled_path(), dest / "data" / "sharegpt.json")
    # A small sweep keeps the test short; the published stages are unchanged.
    params = dest / "params.yaml"
    text = params.read_text()
    assert "  conversations: all" in text
    params.write_text(text.replace("  conversations: all", "  conversations: 10"))
    if with_git:
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
        subprocess.run(git + ["commit", "-qm", "copy"], cwd=dest, check=True)
    else:
        # The documented set-up for a copy without .git (the Docker image).
        dvc(dest, "config", "--local", "core.no_scm", "true")


def dvc_env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                PREFIX_SHARING_V1_PYTHON=str(ROOT / ".venv-v1" / "bin" / "python"))


def dvc(cwd, *args, check=True):
    done = subprocess.run(["dvc", *args], cwd=cwd, env=dvc_env(), capture_output=True,
                          text=True)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def stages_run(output):
    return set(re.findall(r"Running stage '([^']+)'", output))


def verdict(project):
    return json.loads((project / "results" / "check.json").read_text())["verdict"]


@pytest.mark.parametrize("with_git", [True, False], ids=["git", "no-git"])
def test_dvc_recomputes_exactly_what_changed(tmp_path, with_git):
    project = tmp_path / "project"
    fresh_copy(project, with_git)

    first = dvc(project, "repro")
    assert stages_run(first.stdout) == ALL_STAGES
    assert verdict(project) == "pass"
    assert stages_run(dvc(project, "repro").stdout) == set()
    assert "up to date" in dvc(project, "status").stdout

    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    metrics = next(iter(shown.values()))["data"]["results/metrics.json"]["data"]
    assert metrics["multi_turn"]["reused_blocks"] == 3300
    assert metrics["multi_turn"]["sharing_fraction"] == 0.6496062992125984
    assert metrics["single_turn"]["vllm_hit_rate"] == 0.0004782400765184122

    params = project / "params.yaml"
    text = params.read_text().replace("\nblock_size: 16", "\nblock_size: 32")
    params.write_text(text)
    assert stages_run(dvc(project, "repro").stdout) == {
        "replay", "check", "plots", "replay_v1", "compare"}
    assert verdict(project) == "not comparable"
    # The stage passes, so that experiments run; the reproduction does not.
    reproduce = subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "reproduce"], cwd=project,
        env=dvc_env(), capture_output=True, text=True)
    assert reproduce.returncode == 3, reproduce.stdout + reproduce.stderr
    assert "check not comparable" in reproduce.stdout

    # Other data: records 1 to 120 as JSON lines.
    records = []
    for index, record in iter_records(bundled_path()):
        if index > 0:
            records.append(json.dumps(record))
        if len(records) == 120:
            break
    (project / "data" / "sharegpt.json").write_text("\n".join(records) + "\n")
    status = dvc(project, "status").stdout
    assert "data.dvc" in status and "modified:" in status
    assert stages_run(dvc(project, "repro").stdout) == ALL_STAGES
    assert verdict(project) == "not comparable"


def test_same_records_as_json_lines_are_still_comparable(tmp_path):
    project = tmp_path / "project"
    fresh_copy(project, with_git=False)
    records = []
    for _, record in iter_records(bundled_path()):
        records.append(json.dumps(record))
        if len(records) == 150:
            break
    (project / "data" / "sharegpt.json").write_text("\n".join(records) + "\n")
    dvc(project, "repro")
    assert verdict(project) == "pass"
