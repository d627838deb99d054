"""The offline tokenizer splits text exactly as OPT (GPT-2 BPE) does."""

import pytest

from prefix_sharing.errors import UserError
from prefix_sharing.tokenizer import load_tokenizer

# GPT-2 ids, as listed in its encoder.json: "Hello" 15496, " world" 995,
# "User" 12982, ":" 25, "\n" 198.
BOS = 50257


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_known_gpt2_ids_after_bos(tokenizer):
    assert tokenizer.encode(["Hello world"]) == [[BOS, 15496, 995]]
    assert tokenizer.encode(["User:\nHello"]) == [[BOS, 12982, 25, 198, 15496]]


def test_literal_bos_in_text_is_the_special_token(tokenizer):
    # OPT matches "</s>" inside text as its special token.
    assert tokenizer.encode(["Hello</s>"]) == [[BOS, 15496, BOS]]


def test_batches_keep_order(tokenizer):
    prompts = [f"prompt {i}" for i in range(5000)]
    assert tokenizer.encode(prompts) == [tokenizer.encode([p])[0] for p in prompts]


def test_description_is_recorded(tokenizer):
    assert tokenizer.description["name"] == "opt-offline"
    assert tokenizer.description["files_md5"]


def test_unknown_tokenizer_fails_clearly(tmp_path):
    with pytest.raises(UserError, match="not available offline"):
        load_tokenizer(str(tmp_path / "no-such-tokenizer"))


def test_local_hugging_face_tokenizer_by_path(tmp_path, tokenizer):
    from transformers import GPT2TokenizerFast

    from prefix_sharing.tokenizer import _gpt2_files

    vocab, merges = (str(p) for p in _gpt2_files())
    GPT2TokenizerFast(vocab_file=vocab, merges_file=merges).save_pretrained(tmp_path)
    local = load_tokenizer(str(tmp_path))
    text = "User: Héllo, wörld!\nAssistant:"
    # GPT-2's own tokenizer adds no BOS; the split is the same.
    assert local.encode([text])[0] == tokenizer.encode([text])[0][1:]
    assert local.description["name"] == str(tmp_path)
