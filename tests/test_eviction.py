"""Under eviction the study's procedure breaks vLLM's evictor; the
scheduler-faithful one does not."""

import pytest

from prefix_sharing import token_store
from prefix_sharing.conversations import read_conversations
from prefix_sharing.datafile import bundled_path
from prefix_sharing.errors import UserError
from prefix_sharing.replay import replay
from prefix_sharing.tokenizer import load_tokenizer
from prefix_sharing.traces import build_trace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_400_multi_turn():
    found, _ = read_conversations(bundled_path(), 400, drop_line_separators=True)
    requests = build_trace(found, "multi_turn")
    arrays = load_tokenizer().encode_arrays([r.prompt for r in requests])
    return token_store.pack(arrays, [(r.conversation_id, r.turn) for r in requests],
                            {"tokenizer": {}, "trace": {}})


def test_study_procedure_fails_once_blocks_are_evicted(first_400_multi_turn):
    with pytest.raises(UserError, match="assertion at request 94 under the study"):
        replay(first_400_multi_turn, gpu_blocks=500, request_limit=None,
               procedure="study")


def test_scheduler_procedure_replays_everything(first_400_multi_turn):
    totals = replay(first_400_multi_turn, gpu_blocks=500, request_limit=None)["totals"]
    assert totals["requests"] == len(first_400_multi_turn)
    assert totals["evictions"] > 0
    # Every look-up is a hit or a miss that allocated a block.
    assert 0 < totals["hits"] < totals["lookups"]


def test_both_procedures_agree_without_eviction(first_400_multi_turn):
    study = replay(first_400_multi_turn, procedure="study")
    faithful = replay(first_400_multi_turn)
    assert study["totals"] == faithful["totals"]
    assert study["requests"] == faithful["requests"]
