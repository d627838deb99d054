"""Trace rules, each on a tiny conversation worked out by hand."""

from prefix_sharing.conversations import Conversation, Message
from prefix_sharing.traces import build_trace, format_prompt, read_trace, write_trace


def convo(*turns, cid="c"):
    return Conversation(cid, 0, tuple(Message(r, t) for r, t in turns))


def prompts(conversations, kind):
    return [(r.turn, r.prompt, r.answer) for r in build_trace(conversations, kind)]


def test_prompt_format():
    history = (Message("human", "hi"), Message("gpt", "yo"), Message("system", "s"))
    assert format_prompt(history) == "User: hi\nAssistant: yo\nAssistant: s\nAssistant:"


def test_multi_turn_prompt_holds_the_whole_history():
    c = convo(("human", "h1"), ("gpt", "a1"), ("human", "h2"), ("gpt", "a2"))
    assert prompts([c], "multi_turn") == [
        (0, "User: h1\nAssistant:", "a1"),
        (1, "User: h1\nAssistant: a1\nUser: h2\nAssistant:", "a2"),
    ]


def test_multi_turn_unanswered_human_stays_in_history():
    c = convo(("human", "h1"), ("human", "h2"), ("gpt", "a2"))
    assert prompts([c], "multi_turn") == [(0, "User: h1\nUser: h2\nAssistant:", "a2")]


def test_multi_turn_skips_other_roles_and_unprompted_answers():
    c = convo(("system", "s"), ("gpt", "g0"), ("human", "h1"), ("bing", "b"),
              ("human", "h2"), ("gpt", "a2"), ("gpt", "extra"))
    # system, g0, bing and "extra" never enter the history; h1 is unanswered.
    assert prompts([c], "multi_turn") == [(0, "User: h1\nUser: h2\nAssistant:", "a2")]


def test_multi_turn_only_gpt_answers():
    c = convo(("human", "h1"), ("chatgpt", "not an answer"))
    assert prompts([c], "multi_turn") == []


def test_single_turn_first_human_and_first_gpt_after_it():
    c = convo(("gpt", "early"), ("human", "h1"), ("bing", "b"), ("gpt", "a1"),
              ("human", "h2"), ("gpt", "a2"))
    assert prompts([c], "single_turn") == [(0, "User: h1\nAssistant:", "a1")]


def test_single_turn_without_a_pair_gives_no_request():
    assert prompts([convo(("human", "h1"), ("human", "h2"))], "single_turn") == []
    # Only the first human counts, even if a later one is answered.
    c = convo(("gpt", "g"), ("human", "h1"))
    assert prompts([c], "single_turn") == []


def test_arrival_times_first_turns_exponential_later_turns_delayed():
    import random

    a = convo(("human", "1"), ("gpt", "x"), ("human", "2"), ("gpt", "y"), cid="a")
    b = convo(("human", "3"), ("gpt", "z"), cid="b")
    trace = build_trace([a, b], "multi_turn", arrival_rate=2.0, seed=7, turn_delay=5.0)
    rng = random.Random(7)
    first_a = rng.expovariate(2.0)
    first_b = first_a + rng.expovariate(2.0)
    assert [r.arrival_time for r in trace] == [first_a, first_a + 5.0, first_b]
    assert [(r.conversation_id, r.turn) for r in trace] == [("a", 0), ("a", 1),
                                                            ("b", 0)]


def test_trace_file_round_trip(tmp_path):
    c = convo(("human", "h\u2028é"), ("gpt", "a"))
    trace = build_trace([c], "single_turn")
    write_trace(tmp_path / "t.jsonl", trace)
    assert read_trace(tmp_path / "t.jsonl") == trace
