"""The command line on bad input: one line naming the problem, status 2,
nothing written."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, conversation

from prefix_sharing.errors import UserError
from prefix_sharing.params import validate


def cli(*args, cwd, **kwargs):
    command = [sys.executable, "-m", "prefix_sharing", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)


def assert_clean_failure(done, *expected):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("prefix-sharing: error:") or "error:" in lines[-1]
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stderr


def only_inputs_left(folder, inputs):
    return sorted(p.name for p in folder.iterdir()) == sorted(inputs)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the file is empty"),
        (b"{not json", "record 0: not valid JSON"),
        (b'{"a": 1}', "record 0: has no 'conversations' list"),
        (b'[{"id": "x", "conversations": [null]}]',
         "record 0 (id 'x'): message 0 is null, not an object"),
        (b"\xff\xfe[]", "invalid UTF-8 at byte 0"),
    ],
)
def test_bad_data_file(tmp_path, content, expected):
    (tmp_path / "bad.json").write_bytes(content)
    done = cli("traces", "--kind", "multi_turn", "--data", "bad.json",
               "--out", "t.jsonl", cwd=tmp_path)
    assert_clean_failure(done, "bad.json", expected)
    assert only_inputs_left(tmp_path, ["bad.json"])


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"")
    done = cli("--debug", "traces", "--kind", "multi_turn", "--data", "bad.json",
               "--out", "t.jsonl", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_fewer_conversations_than_asked(tmp_path):
    records = [conversation(str(i), ("human", "q"), ("gpt", "a")) for i in range(3)]
    (tmp_path / "d.json").write_text(json.dumps(records))
    args = ("traces", "--kind", "single_turn", "--data", "d.json",
            "--conversations", "5", "--out", "t.jsonl")
    assert_clean_failure(cli(*args, cwd=tmp_path), "holds only 3", "--allow-fewer")
    assert only_inputs_left(tmp_path, ["d.json"])
    done = cli(*args, "--allow-fewer", cwd=tmp_path)
    assert done.returncode == 0 and "going on with them" in done.stderr
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--block-size", "0", "below the minimum 1"),
        ("--block-size", "-16", "below the minimum 1"),
        ("--block-size", "16.5", "not a whole number"),
        ("--gpu-blocks", "-1", "below the minimum 1"),
        ("--requests", "-3", "below the minimum 1"),
        ("--requests", "0", "argument --requests: 0 is below the minimum 1"),
        ("--watermark", "1.5", "not in [0, 1)"),
        ("--watermark", "nan", "not a finite number"),
    ],
)
def test_bad_replay_parameters(tmp_path, flag, value, expected):
    done = cli("replay", flag, value, "--out", "results", cwd=tmp_path)
    assert done.returncode == 2 and expected in done.stderr
    assert only_inputs_left(tmp_path, [])


def test_params_file_is_checked_with_the_same_rules():
    assert validate({"block_size": 32, "requests": "all"}) == {
        "block_size": 32, "requests": None}
    for bad, message in [({"block_size": 0}, "block_size: 0 is below"),
                         ({"watermark": -0.1}, "watermark: -0.1 is not in"),
                         ({"conversations": -1}, "conversations: -1 is below"),
                         ({"blocksize": 16}, "unknown parameter blocksize"),
                         ({"sweep": {"block_sizes": [8, 0]}},
                          "sweep.block_sizes: 0 is below the minimum 1"),
                         ({"sweep": {"capacities": ["lots"]}},
                          "sweep.capacities: 'lots' is not a whole number"),
                         ({"line_separators": "strip"}, "not one of drop, keep")]:
        with pytest.raises(UserError, match=message):
            validate(bad)


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    work = tmp_path_factory.mktemp("tokenized")
    assert cli("traces", "--kind", "multi_turn", "--conversations", "5",
               "--out", "traces/multi_turn.jsonl", cwd=work).returncode == 0
    assert cli("tokenize", "--trace", "traces/multi_turn.jsonl",
               "--out", "tokens/multi_turn.tokens", cwd=work).returncode == 0
    return work


def test_capacity_too_small_for_any_request(tokenized):
    done = cli("replay", "--experiments", "multi_turn", "--gpu-blocks", "5",
               "--block-size", "1",
               "--out", "small", cwd=tokenized)
    assert_clean_failure(done, "holds 5 blocks for a request", "raise gpu_blocks")
    assert not (tokenized / "small" / "multi_turn.json").exists()


def test_unknown_tokenizer(tokenized):
    done = cli("tokenize", "--trace", "traces/multi_turn.jsonl",
               "--tokenizer", "no/such-tokenizer", "--out", "x.tokens", cwd=tokenized)
    assert_clean_failure(done, "'no/such-tokenizer' is not available offline")
    assert not (tokenized / "x.tokens").exists()


def test_output_folder_not_writable(tokenized):
    # Nobody, root included, can create a folder in /proc.
    done = cli("replay", "--experiments", "multi_turn", "--out",
               "/proc/prefix-sharing-results", cwd=tokenized)
    assert_clean_failure(done, "/proc/prefix-sharing-results: cannot create")


def test_output_path_is_a_file(tokenized):
    (tokenized / "taken").write_text("")
    done = cli("replay", "--experiments", "multi_turn", "--out", "taken/r",
               cwd=tokenized)
    assert_clean_failure(done, "cannot create the output folder")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_no_partial_output(tmp_path, signum):
    process = subprocess.Popen(
        [sys.executable, "-m", "prefix_sharing", "traces", "--kind", "multi_turn",
         "--conversations", "all", "--out", "t.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    # Interrupt while it writes the trace (it logs after reading the data).
    while process.poll() is None and not any(tmp_path.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []
    rerun = cli("traces", "--kind", "multi_turn", "--conversations", "20",
                "--out", "t.jsonl", cwd=tmp_path)
    assert rerun.returncode == 0


INTERRUPT_ON_IMPORT = """
import importlib.abc, os, signal, sys

class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prefix_sharing.conversations":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
"""


def test_interrupt_while_importing(tmp_path):
    # Ctrl-C lands while the command line is still being imported.
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_ON_IMPORT)
    done = cli("traces", "--out", "t.jsonl", cwd=tmp_path,
               env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert done.returncode == 130
    assert done.stderr == "prefix-sharing: interrupted; no partial output kept\n"


def test_interrupted_replay_keeps_every_old_result(tokenized, tmp_path, monkeypatch):
    """Stopped after one experiment, the folder still holds only the old run."""
    from prefix_sharing import cli as command_line
    from prefix_sharing import replay as replaying

    out = tmp_path / "results"
    out.mkdir()
    names = ["multi_turn.json", "multi_turn.requests.json",
             "multi_turn_no_caching.json", "multi_turn_no_caching.requests.json",
             "metrics.json"]
    for name in names:
        (out / name).write_text("old\n")
    real, calls = replaying.replay, []

    def stop_at_the_second(*args, **kwargs):
        calls.append(kwargs["caching"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(replaying, "replay", stop_at_the_second)
    status = command_line.main([
        "--quiet", "replay", "--tokens", str(tokenized / "tokens"),
        "--experiments", "multi_turn,multi_turn_no_caching", "--out", str(out)])
    assert status == 130 and calls == [True, False]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert {(out / name).read_text() for name in names} == {"old\n"}


def test_files_of_one_command_land_together(tmp_path):
    from prefix_sharing.outputs import together, write_json

    with pytest.raises(KeyboardInterrupt):
        with together():
            write_json(tmp_path / "a.json", 1)
            assert list(tmp_path.iterdir()) != []  # only a temporary file
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with together():
        write_json(tmp_path / "a.json", 1)
        write_json(tmp_path / "b.json", 2)
        assert not (tmp_path / "a.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_interrupt_just_after_the_temporary_file_is_made(tmp_path, monkeypatch):
    """The moment a test run once hit: the file existed, its name was not kept."""
    import tempfile

    from prefix_sharing.outputs import write_json

    make = tempfile.mkstemp

    def make_then_interrupt(*args, **kwargs):
        made = make(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return made

    monkeypatch.setattr(tempfile, "mkstemp", make_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_json(tmp_path / "a.json", 1)
    assert list(tmp_path.iterdir()) == []


def test_pool_too_large_for_memory_is_refused_at_once(tokenized):
    started = time.monotonic()
    done = cli("replay", "--gpu-blocks", "100000000000", "--out", "huge",
               cwd=tokenized)
    assert_clean_failure(done, "100,000,000,000 GPU", "use fewer blocks")
    assert time.monotonic() - started < 30
    assert not (tokenized / "huge").exists()


def test_trace_must_not_overwrite_its_summary(tmp_path):
    done = cli("traces", "--kind", "multi_turn", "--out", "t.json", cwd=tmp_path)
    assert_clean_failure(done, "t.json: a trace file must end in .jsonl")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"conversation_id": "c", "conversation_index": 0, "turn": 0, '
         '"prompt": 5, "answer": "a", "arrival_time": 0}',
         "line 0 (id 'c'): not a trace record: the prompt must be"),
        ("{broken", "t.jsonl: record 0: not a trace record"),
    ],
)
def test_bad_trace_record(tmp_path, content, expected):
    (tmp_path / "t.jsonl").write_text(content + "\n")
    done = cli("tokenize", "--trace", "t.jsonl", "--out", "t.tokens", cwd=tmp_path)
    assert_clean_failure(done, expected.replace("line 0", "record 0"))
    assert not (tmp_path / "t.tokens").exists()


def test_check_with_bad_published_files(tmp_path):
    (tmp_path / "empty.json").write_text('{"source": "x", "experiments": {}}')
    (tmp_path / "broken.json").write_text("{")
    done = cli("check", "--published", "empty.json", cwd=tmp_path)
    assert_clean_failure(done, "empty.json: holds no published figures")
    done = cli("check", "--published", "broken.json", cwd=tmp_path)
    assert_clean_failure(done, "broken.json: not valid JSON")
    done = cli("check", "--published", "missing.json", cwd=tmp_path)
    assert_clean_failure(done, "missing.json: No such file or directory")


def test_special_files_are_never_replaced(tokenized):
    done = cli("check", "--published", "/nonexistent", "--out", "/dev/null",
               cwd=tokenized)
    assert done.returncode == 2
    done = cli("published", "--source", str(ROOT.parent / "shared" / "published"),
               "--out", "/dev/null", cwd=tokenized)
    if (ROOT.parent / "shared" / "published").exists():
        assert_clean_failure(done, "/dev/null: not a regular file")
    import os as _os
    import stat
    assert stat.S_ISCHR(_os.stat("/dev/null").st_mode)


def test_params_file_needs_every_key_and_single_values():
    from prefix_sharing.params import PARAMS

    full = {key: 1 for key in PARAMS} | {"sweep": {}}
    with pytest.raises(UserError, match="block_size is missing"):
        validate({k: v for k, v in full.items() if k != "block_size"},
                 complete=True)
    with pytest.raises(UserError, match="block_size: expected a single value"):
        validate({"block_size": [16]})
    with pytest.raises(UserError, match="may hold only letters"):
        validate({"tokenizer": "opt-offline; echo injected"})
