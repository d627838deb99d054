"""What both replays (V0 and V1) share: the request loop and the result files.

Kept free of vLLM, so the V1 environment can import it as well.
"""

import logging
import time

from prefix_sharing import metrics
from prefix_sharing.outputs import write_json
from prefix_sharing.token_store import TRACE_ORDER

log = logging.getLogger(__name__)

# name: (trace kind, prefix caching on)
EXPERIMENTS = {
    "multi_turn": ("multi_turn", True),
    "single_turn": ("single_turn", True),
    "multi_turn_no_caching": ("multi_turn", False),
    "single_turn_no_caching": ("single_turn", False),
}
_PROGRESS_SECONDS = 5.0


def replay_requests(prefill, tokens, count, order=TRACE_ORDER):
    """Feed ``count`` prompts to ``prefill``, one at a time, in ``order``.

    ``order`` is ``"trace"`` (the first ``count`` requests as written) or
    ``"arrival"`` (the first ``count`` to arrive). Yields ``(record, result)``:
    the per-request figures and what ``prefill`` returned, logging progress
    every few seconds. Records keep each request's position in the trace.
    """
    lengths = tokens.lengths()
    started = last_report = time.monotonic()
    replayed_tokens = 0
    for done, index in enumerate(tokens.order(order)[:count], start=1):
        result = prefill(index, tokens.prompt(index))
        conversation_id, turn = tokens.request(index)
        replayed_tokens += int(lengths[index])
        yield metrics.request_figures(
            index, conversation_id, turn, int(lengths[index]), result
        ), result
        now = time.monotonic()
        if now - last_report >= _PROGRESS_SECONDS:
            last_report = now
            log.info(
                "replayed %d of %d requests (%.0f%%), %.0f prompt tokens/s",
                done, count, 100 * done / count,
                replayed_tokens / (now - started),
            )


def trace_description(summary):
    keys = ("kind", "requests", "conversations", "drop_line_separators", "data")
    return {key: summary.get(key) for key in keys}


def write_experiment(out_dir, name, result, tokens, gpu_blocks):
    """NAME.json (configuration and totals) and NAME.requests.json."""
    document = {
        "experiment": name,
        "config": result["config"],
        "trace": trace_description(tokens.header["trace"]),
        "tokenizer": tokens.header["tokenizer"],
        "totals": result["totals"],
    }
    write_json(out_dir / f"{name}.json", document)
    write_json(out_dir / f"{name}.requests.json", result["requests"])
    totals = result["totals"]
    if totals["not_admitted"]:
        log.warning(
            "%s: %d of %d requests never fit in %d GPU blocks and were not admitted",
            name, totals["not_admitted"], totals["requests"], gpu_blocks,
        )
    return totals
