"""Trace invariants over random conversations (property-based)."""

from hypothesis import given
from hypothesis import strategies as st

from prefix_sharing.conversations import Conversation, Message
from prefix_sharing.traces import ASSISTANT_CUE, build_trace

roles = st.sampled_from(["human", "gpt", "system", "bing", "chatgpt"])
texts = st.text(min_size=1, max_size=12).map(str.strip).filter(bool)
conversations = st.lists(
    st.lists(st.tuples(roles, texts), min_size=1, max_size=10), max_size=6
).map(lambda convs: [
    Conversation(f"c{i}", i, tuple(Message(r, t) for r, t in turns))
    for i, turns in enumerate(convs)
])


@given(conversations)
def test_multi_turn_prompts_extend_the_previous_one(convs):
    trace = build_trace(convs, "multi_turn")
    for before, after in zip(trace, trace[1:]):
        if after.conversation_id == before.conversation_id:
            assert after.turn == before.turn + 1
            stem = before.prompt[: -len(ASSISTANT_CUE)]
            assert after.prompt.startswith(stem + f"Assistant: {before.answer}\n")
        else:
            assert after.turn == 0


@given(conversations)
def test_request_counts_follow_the_rules(convs):
    for convo in convs:
        m = convo.messages
        answered = sum(
            m[i].role == "human" and m[i + 1].role == "gpt" for i in range(len(m) - 1)
        )
        assert len(build_trace([convo], "multi_turn")) == answered
        first_human = next((i for i, x in enumerate(m) if x.role == "human"), None)
        has_pair = first_human is not None and any(
            x.role == "gpt" for x in m[first_human + 1:]
        )
        assert len(build_trace([convo], "single_turn")) == int(has_pair)


@given(conversations)
def test_every_prompt_ends_with_the_assistant_cue(convs):
    for kind in ("multi_turn", "single_turn"):
        for request in build_trace(convs, kind):
            assert request.prompt.endswith("\n" + ASSISTANT_CUE)
            assert request.prompt.startswith("User: ")


@given(conversations)
def test_arrival_times_never_go_back_within_a_conversation(convs):
    trace = build_trace(convs, "multi_turn")
    for before, after in zip(trace, trace[1:]):
        if after.conversation_id == before.conversation_id:
            assert after.arrival_time > before.arrival_time
