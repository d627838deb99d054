"""A tokenized trace on disk: every prompt's token ids in one compact file.

Tokenizing is the slowest step before the replay, so each trace is tokenized
once and every replay reads the ids back from here. The file holds three
NumPy arrays written one after the other with ``np.save`` (no pickles, no
timestamps, so equal ids give equal bytes):

1. a JSON header as a 0-d string array: the tokenizer, the trace it came
   from, each request's conversation id and turn, and its arrival time;
2. ``offsets``: int64, prompt ``i`` is ``ids[offsets[i]:offsets[i + 1]]``;
3. ``ids``: uint32 token ids of all prompts, concatenated.
"""

import json

import numpy as np

from prefix_sharing.errors import InputError
from prefix_sharing.outputs import atomic_file

FORMAT = "prefix-sharing tokens v2"

# Orders in which a replay can feed the requests to the block manager.
TRACE_ORDER = "trace"
ARRIVAL_ORDER = "arrival"
ORDERS = (TRACE_ORDER, ARRIVAL_ORDER)


class TokenizedTrace:
    def __init__(self, offsets, ids, header):
        self.offsets = offsets
        self.ids = ids
        self.header = header

    def __len__(self):
        return len(self.offsets) - 1

    def prompt(self, index):
        """Token ids of prompt ``index`` as a Python list."""
        return self.ids[self.offsets[index]:self.offsets[index + 1]].tolist()

    def request(self, index):
        """The conversation id and turn of request ``index``."""
        conversation_id, turn = self.header["requests"][index]
        return conversation_id, turn

    def lengths(self):
        return np.diff(self.offsets)

    def order(self, name=TRACE_ORDER):
        """Request indices in the order a replay feeds them.

        ``"trace"``: as written, every conversation's turns one after another,
        as the study replayed them. ``"arrival"``: by arrival time (ties by
        position), so the turns of concurrent conversations interleave as a
        server would receive them and a small cache forgets between turns.
        """
        if name == TRACE_ORDER:
            return list(range(len(self)))
        if name != ARRIVAL_ORDER:
            raise ValueError(f"order must be one of {ORDERS}")
        arrivals = self.header["arrival_times"]
        return sorted(range(len(self)), key=lambda index: (arrivals[index], index))


def pack(token_arrays, requests, header, arrival_times=None):
    """Bundle token ids with the (conversation id, turn) of each request.

    ``token_arrays`` holds one sequence of ids per request (arrays or lists);
    ``requests`` one ``(conversation_id, turn)`` pair per request;
    ``arrival_times`` one time in seconds per request (default: the position,
    so arrival order is trace order).
    """
    if arrival_times is None:
        arrival_times = [float(index) for index in range(len(requests))]
    offsets = np.zeros(len(token_arrays) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_arrays], out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.uint32)
    for start, tokens in zip(offsets, token_arrays):
        ids[start:start + len(tokens)] = tokens
    header = dict(
        header,
        format=FORMAT,
        requests=[[cid, turn] for cid, turn in requests],
        arrival_times=[float(time) for time in arrival_times],
    )
    return TokenizedTrace(offsets, ids, header)


def write_tokens(path, trace):
    with atomic_file(path, "wb") as handle:
        header = json.dumps(trace.header, sort_keys=True)
        np.save(handle, np.array(header), allow_pickle=False)
        np.save(handle, trace.offsets, allow_pickle=False)
        np.save(handle, trace.ids, allow_pickle=False)


def read_tokens(path):
    try:
        with open(path, "rb") as handle:
            header = json.loads(str(np.load(handle, allow_pickle=False)))
            offsets = np.load(handle, allow_pickle=False)
            ids = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(path, f"not a tokenized trace ({error})") from None
    if header.get("format") != FORMAT:
        raise InputError(path, f"not a tokenized trace of format {FORMAT!r}")
    return TokenizedTrace(offsets, ids, header)
