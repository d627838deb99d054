"""Turn conversations into request traces, in the study's prompt format.

A *request* is one prompt sent to the model: the text it would prefill, the
answer recorded in ShareGPT for it, and an arrival time. A *trace* is the list
of requests in conversation order, written as JSON lines.

OPT has no chat template, so prompts use a plain one: one line per message,
``User: <text>`` for the human and ``Assistant: <text>`` for any other role,
then a last line ``Assistant:`` that cues the answer.
"""

import dataclasses
import json
import math
import random

from prefix_sharing.conversations import ANSWER_ROLE, USER_ROLE, encodable
from prefix_sharing.errors import InputError, UserError
from prefix_sharing.outputs import atomic_file

KINDS = ("multi_turn", "single_turn")
ASSISTANT_CUE = "Assistant:"


@dataclasses.dataclass(frozen=True)
class Request:
    conversation_id: str
    conversation_index: int
    turn: int  # 0 for a conversation's first request
    prompt: str
    answer: str
    arrival_time: float  # seconds from the start of the trace


def format_prompt(messages):
    """The prompt for a history of messages, ending with the assistant cue."""
    lines = [
        f"User: {m.text}" if m.role == USER_ROLE else f"Assistant: {m.text}"
        for m in messages
    ]
    lines.append(ASSISTANT_CUE)
    return "\n".join(lines)


def single_turn_pairs(conversation):
    """The first human message and the first ``gpt`` answer after it, if any."""
    messages = conversation.messages
    for i, message in enumerate(messages):
        if message.role == USER_ROLE:
            for later in messages[i + 1:]:
                if later.role == ANSWER_ROLE:
                    return [((message,), later.text)]
            return []
    return []


def multi_turn_pairs(conversation):
    """Every answered turn, each prompt holding the whole history before it.

    A human message joins the history; when the very next message is a ``gpt``
    answer, the history so far is a prompt and the answer joins the history.
    Any other message not consumed that way never enters the history.
    """
    history = []
    pairs = []
    messages = conversation.messages
    i = 0
    while i < len(messages):
        message = messages[i]
        if message.role != USER_ROLE:
            i += 1
            continue
        history.append(message)
        following = messages[i + 1] if i + 1 < len(messages) else None
        if following is not None and following.role == ANSWER_ROLE:
            pairs.append((tuple(history), following.text))
            history.append(following)
            i += 2
        else:
            i += 1
    return pairs


_PAIRS = {"multi_turn": multi_turn_pairs, "single_turn": single_turn_pairs}


def build_trace(conversations, kind, arrival_rate=2.0, seed=42, turn_delay=10.0):
    """The requests of one trace kind, in conversation order.

    Arrival times: a conversation's first request follows the previous
    conversation's first request after an exponential gap (``arrival_rate``
    requests a second, drawn from ``seed``); each later turn comes
    ``turn_delay`` seconds after the one before. The replay ignores time.
    """
    if kind not in _PAIRS:
        raise ValueError(f"unknown trace kind {kind!r}; choose from {KINDS}")
    rng = random.Random(seed)
    clock = 0.0
    requests = []
    for conversation in conversations:
        pairs = _PAIRS[kind](conversation)
        if not pairs:
            continue
        clock += rng.expovariate(arrival_rate)
        if not math.isfinite(clock + len(pairs) * turn_delay):
            raise UserError(
                "arrival times overflow: raise the arrival rate or lower the "
                "turn delay"
            )
        for turn, (history, answer) in enumerate(pairs):
            requests.append(
                Request(
                    conversation_id=conversation.id,
                    conversation_index=conversation.index,
                    turn=turn,
                    prompt=format_prompt(history),
                    answer=answer,
                    arrival_time=clock + turn * turn_delay,
                )
            )
    return requests


def write_trace(path, requests):
    """Write requests as JSON lines, atomically."""
    with atomic_file(path) as handle:
        for request in requests:
            json.dump(dataclasses.asdict(request), handle, ensure_ascii=False)
            handle.write("\n")


def iter_trace(path):
    """Yield the requests of a JSON-lines trace one at a time."""
    fields = [f.name for f in dataclasses.fields(Request)]
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror})") from None
    with handle:
        for line_number, line in enumerate(handle):
            try:
                record = json.loads(line.decode("utf-8"))
                request = Request(**{name: record[name] for name in fields})
            except (ValueError, KeyError, TypeError) as error:
                # ValueError includes invalid UTF-8 and invalid JSON.
                raise InputError(
                    path, f"not a trace record ({error})", line_number
                ) from None
            if not (isinstance(request.prompt, str) and isinstance(request.turn, int)
                    and encodable(request.prompt)):
                raise InputError(path, "not a trace record: the prompt must be "
                                 "UTF-8 text and the turn a whole number",
                                 line_number, request.conversation_id)
            yield request


def read_trace(path):
    """All requests of a JSON-lines trace."""
    return list(iter_trace(path))
