"""Replaying by arrival time interleaves conversations, and a small cache
forgets between turns; replaying in trace order hides that.

Block size 4, no watermark, a pool of 3 blocks. Conversation a: turn 0 is
A1 A2 (8 tokens), turn 1 is A1 A2 A3. Conversation b: B1 B2, then B1 B2 B3.
Turn 0 of a arrives at 0 s, of b at 1 s; turn 1 of a at 10 s, of b at 11 s.

Trace order (a0 a1 b0 b1): a1 finds A1 A2 and b1 finds B1 B2: 4 hits of 10
look-ups. Arrival order (a0 b0 a1 b1): b0 needs two blocks, takes the free one
and evicts A2 (A1 and A2 were used at the same time; the deeper goes first);
a1 finds A1 only and evicts B2 and B1 (used later than A1, but A1 is in use);
b1 finds nothing: 1 hit of 10 look-ups.
"""

import numpy as np
import pytest

from prefix_sharing import token_store

A = list(range(100, 112))
B = list(range(200, 212))
PROMPTS = [A[:8], A, B[:8], B]  # trace order: a0 a1 b0 b1
REQUESTS = [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
ARRIVALS = [0.0, 10.0, 1.0, 11.0]


@pytest.fixture
def trace():
    return token_store.pack([np.array(p, dtype=np.uint32) for p in PROMPTS],
                            REQUESTS, {"tokenizer": {}, "trace": {}}, ARRIVALS)


def test_orders(trace, tmp_path):
    assert trace.order("trace") == [0, 1, 2, 3]
    assert trace.order("arrival") == [0, 2, 1, 3]
    # Equal times keep trace order; arrival times survive the file.
    tied = token_store.pack([[1], [2], [3]], [("x", 0), ("y", 0), ("z", 0)],
                            {}, [5.0, 1.0, 5.0])
    token_store.write_tokens(tmp_path / "t.tokens", tied)
    assert token_store.read_tokens(tmp_path / "t.tokens").order("arrival") == [1, 0, 2]


@pytest.mark.slow
@pytest.mark.parametrize("order, hits, hits_by_request", [
    ("trace", 4, [0, 2, 0, 2]),
    ("arrival", 1, [0, 1, 0, 0]),
])
def test_small_cache_forgets_between_interleaved_turns(trace, order, hits,
                                                       hits_by_request):
    from prefix_sharing.replay import replay

    result = replay(trace, block_size=4, gpu_blocks=3, cpu_blocks=0, watermark=0.0,
                    request_limit=None, order=order)
    assert result["totals"]["lookups"] == 10
    assert result["totals"]["hits"] == hits
    # Records keep each request's place in the trace, whatever the order.
    by_request = sorted(result["requests"], key=lambda r: r["request"])
    assert [r["hits"] for r in by_request] == hits_by_request
    assert [r["request"] for r in result["requests"]] == trace.order(order)
    assert result["config"]["order"] == order
