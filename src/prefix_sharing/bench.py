"""Speed and memory, measured and printed, never asserted.

Machines differ and are shared, so the figures worth comparing are ratios
taken in one run: the message-by-message tokenizer against tokenizing whole
prompts, on the same prompts. Every stage runs as its own process, as DVC
runs it, and its wall time and peak resident memory are read from the
operating system.
"""

import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefix_sharing import token_store, traces
from prefix_sharing.outputs import write_json
from prefix_sharing.tokenizer import load_tokenizer

log = logging.getLogger(__name__)


def run_stage(args, cwd):
    """Run one CLI stage; return (wall seconds, peak RSS in MiB)."""
    command = [sys.executable, "-m", "prefix_sharing", "--quiet", *args]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        # Interrupted: stop the stage before its folder is removed under it.
        process.terminate()
        process.wait()
        raise
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"stage {' '.join(args)} failed")
    return wall, usage.ru_maxrss / 1024


def pipeline(work, data, conversations, requests, gpu_blocks, kinds, experiments):
    """Time every stage from data to results; returns rows and the total."""
    work.mkdir(parents=True, exist_ok=True)
    stages = []
    for kind in kinds:
        stages.append((f"traces {kind}", [
            "traces", "--kind", kind, "--data", str(data), "--conversations",
            str(conversations), "--allow-fewer", "--out", f"traces/{kind}.jsonl"]))
    for kind in kinds:
        stages.append((f"tokenize {kind}", [
            "tokenize", "--trace", f"traces/{kind}.jsonl", "--out",
            f"tokens/{kind}.tokens"]))
    stages.append(("replay", [
        "replay", "--experiments", experiments, "--requests", str(requests),
        "--gpu-blocks", str(gpu_blocks), "--out", "results"]))
    rows = []
    for name, args in stages:
        wall, peak = run_stage(args, work)
        rows.append({"stage": name, "seconds": round(wall, 2), "peak_mib": round(peak)})
        log.info("%-24s %7.1f s %7d MiB", name, wall, peak)
    return rows, round(sum(r["seconds"] for r in rows), 2)


def tokenizer_rates(trace_path):
    """Tokens a second of both tokenizer paths on the same prompts."""
    prompts = [r.prompt for r in traces.iter_trace(trace_path)]
    rates = {}
    for name in ("whole_prompts", "message_by_message"):
        tokenizer = load_tokenizer()
        started = time.monotonic()
        if name == "whole_prompts":
            count = sum(len(ids) for ids in tokenizer.encode(prompts))
        else:
            count = sum(len(ids) for ids in tokenizer.encode_arrays(prompts))
        rates[name] = count / (time.monotonic() - started)
        log.info("tokenizer, %s: %.0f tokens/s", name.replace("_", " "), rates[name])
    rates["speed_up"] = rates["message_by_message"] / rates["whole_prompts"]
    return rates, count


def replay_rate(tokens_path):
    from prefix_sharing.replay import replay
    from prefix_sharing.vllm_v0_adapter import _import_vllm

    _import_vllm()
    tokens = token_store.read_tokens(tokens_path)
    started = time.monotonic()
    result = replay(tokens, gpu_blocks=10_000, request_limit=None)
    seconds = time.monotonic() - started
    rate = result["totals"]["prompt_tokens"] / seconds
    log.info("replay through vLLM's block manager: %.0f prompt tokens/s", rate)
    return rate


def run(data, out, whole=True, sample_conversations=1000):
    """Measure and write ``out``; returns the figures."""
    figures = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    with tempfile.TemporaryDirectory(prefix="prefix-sharing-bench-") as folder:
        work = Path(folder)
        log.info("published configuration, data to results:")
        rows, total = pipeline(work / "published", data, 100, 100, 10_000,
                               ("multi_turn", "single_turn"),
                               "multi_turn,single_turn,multi_turn_no_caching")
        figures["published_configuration"] = {"stages": rows, "seconds": total}

        log.info("rates on the first %d conversations, multi-turn:",
                 sample_conversations)
        sample = work / "sample"
        pipeline(sample, data, sample_conversations, "all", 10_000, ("multi_turn",),
                 "multi_turn")
        rates, tokens = tokenizer_rates(sample / "traces" / "multi_turn.jsonl")
        figures["tokenizer_tokens_per_second"] = rates | {"prompt_tokens": tokens}
        figures["replay_prompt_tokens_per_second"] = replay_rate(
            sample / "tokens" / "multi_turn.tokens")

        if whole:
            log.info("whole data file, multi-turn, block size 16, 10,000 blocks:")
            rows, total = pipeline(work / "whole", data, "all", "all", 10_000,
                                   ("multi_turn",), "multi_turn")
            figures["whole_data_multi_turn"] = {
                "stages": rows, "seconds": total,
                "peak_mib": max(r["peak_mib"] for r in rows),
            }
    write_json(out, figures)
    return figures
