"""Same inputs, same bytes: across runs, hash seeds and with the network gone."""

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

# Loaded at interpreter start through PYTHONPATH: refuses every connection.
NO_NETWORK = textwrap.dedent("""
    import socket

    def _refuse(*args, **kwargs):
        raise ConnectionRefusedError("network disabled for this test")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
""")


def run_pipeline(work, env):
    work.mkdir(exist_ok=True)
    steps = [("traces", "--kind", k, "--out", f"traces/{k}.jsonl")
             for k in ("multi_turn", "single_turn")]
    steps += [("tokenize", "--trace", f"traces/{k}.jsonl",
               "--out", f"tokens/{k}.tokens") for k in ("multi_turn", "single_turn")]
    steps += [("replay", "--out", "results"), ("plots", "--out", "results/plots")]
    for step in steps:
        done = subprocess.run([sys.executable, "-m", "prefix_sharing", *step],
                              cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return {
        str(path.relative_to(work)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(work.rglob("*")) if path.is_file()
    }


def test_byte_identical_across_hash_seeds_and_offline(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    offline = dict(os.environ, PYTHONPATH=str(guard), PYTHONHASHSEED="1",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    connect = "import socket; socket.create_connection(('127.0.0.1', 9))"
    check = subprocess.run([sys.executable, "-c", connect], env=offline,
                           capture_output=True, text=True)
    assert "network disabled for this test" in check.stderr

    first = run_pipeline(tmp_path / "a", offline)
    second = run_pipeline(tmp_path / "b", dict(os.environ, PYTHONHASHSEED="2"))
    # traces 2 x 2, tokens 2, results 4 x 2 + metrics, plots 3 x 2
    assert len(first) == 21
    assert first == second
    for name in ("results/multi_turn.json", "traces/multi_turn.json"):
        text = (tmp_path / "a" / name).read_text()
        assert "time" not in text.replace("arrival_time", "").replace(
            "turn_delay", "")
        assert str(tmp_path) not in text
