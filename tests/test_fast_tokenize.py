"""The message-by-message tokenizer gives exactly the ids of the plain one."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefix_sharing.conversations import Conversation, Message, read_conversations
from prefix_sharing.datafile import bundled_path
from prefix_sharing.tokenizer import load_tokenizer
from prefix_sharing.traces import build_trace


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def assert_same(tokenizer, prompts):
    plain = tokenizer.encode(prompts)
    fast = tokenizer.encode_arrays(prompts)
    assert [list(map(int, a)) for a in fast] == plain


@pytest.mark.parametrize("kind", ["multi_turn", "single_turn"])
def test_equal_on_the_first_300_conversations(tokenizer, kind):
    found, _ = read_conversations(bundled_path(), 300, drop_line_separators=False)
    assert_same(tokenizer, [r.prompt for r in build_trace(found, kind)])


# Text with the characters that decide token boundaries around newlines.
awkward_text = st.lists(
    st.sampled_from(
        list("aZ9 .:'\n\t\r") + ["\u2028", "\u00a0", "\x1f", "\u3000", "é", "</s>",
                                  "User: ", "Assistant:", "\n\n", " \n"]
    ),
    max_size=20,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["human", "gpt", "system"]),
                          awkward_text), min_size=1, max_size=8))
def test_equal_on_random_conversations(tokenizer, turns):
    messages = tuple(Message(role, text.strip()) for role, text in turns
                     if text.strip())
    if not messages:
        return
    conversation = Conversation("c", 0, messages)
    prompts = [r.prompt for kind in ("multi_turn", "single_turn")
               for r in build_trace([conversation], kind)]
    assert_same(tokenizer, prompts)
