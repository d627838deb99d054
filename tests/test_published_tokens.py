"""All 200 published per-request token counts, from the bundled data."""

import pytest

from prefix_sharing.conversations import read_conversations
from prefix_sharing.datafile import bundled_path
from prefix_sharing.tokenizer import load_tokenizer
from prefix_sharing.traces import build_trace


@pytest.fixture(scope="module")
def first_100():
    return read_conversations(bundled_path(), 100, drop_line_separators=True)


@pytest.mark.parametrize("kind", ["multi_turn", "single_turn"])
def test_token_counts_match_the_study(first_100, published, kind):
    found, _ = first_100
    prompts = [r.prompt for r in build_trace(found, kind)[:100]]
    counts = [len(ids) for ids in load_tokenizer().encode(prompts)]
    assert counts == published["experiments"][kind]["per_request"]["prompt_tokens"]


def test_line_separators_change_single_turn_request_57(published):
    # With U+2028 kept, request 57 is 2,537 tokens instead of the published 2,520.
    found, _ = read_conversations(bundled_path(), 100, drop_line_separators=False)
    prompt = build_trace(found, "single_turn")[57].prompt
    assert len(load_tokenizer().encode([prompt])[0]) == 2537
    assert published["experiments"]["single_turn"]["per_request"]["prompt_tokens"][
        57
    ] == 2520


def test_bundled_file_is_cut_off_after_17671_conversations():
    found, report = read_conversations(bundled_path())
    assert report.cut_off
    assert report.records_read == 17671
