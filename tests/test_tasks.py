"""The invoke tasks, as `./run.sh` runs them."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_interrupt_without_a_terminal_stops_the_command_cleanly():
    """SIGINT to invoke alone (no terminal, input closed) reaches the command.

    Here invoke used to type Ctrl-C into the command's closed input, fail with
    a traceback and leave the command running.
    """
    bin_dir = os.path.dirname(sys.executable)
    process = subprocess.Popen(
        [os.path.join(bin_dir, "invoke"), "bench", "--quick"], cwd=ROOT,
        env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
        # Started from a background job, SIGINT would arrive ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = []
    deadline = time.monotonic() + 300
    for line in process.stdout:  # wait until the replay stage is running
        output.append(line)
        if line.startswith("tokenize single_turn"):
            break
        assert time.monotonic() < deadline, "".join(output)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    output.append(process.stdout.read())
    process.wait(timeout=60)
    text = "".join(output)
    assert process.returncode != 0, text
    assert "Traceback" not in text, text
    assert "prefix-sharing: interrupted; no partial output kept" in text
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # nothing of the task runs on
        os.killpg(process.pid, 0)
