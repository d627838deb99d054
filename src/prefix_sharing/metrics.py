"""Per-request figures and their totals, in the study's terms and in true ones.

Terms, used the same way everywhere in this package:

- *block*: an entry of a sequence's block table (``block_size`` tokens, the
  last one possibly partly filled).
- *reused* (the study's term): blocks minus *newly cached* blocks, where newly
  cached is the growth of the allocator's map of cached blocks. The last,
  partly filled block never enters that map, so it always counts as reused,
  and under eviction the map also shrinks. Kept to reproduce the study.
- *sharing fraction*: reused / blocks, per request or over all requests.
- *look-up* and *hit*: a full block the allocator searched in its cache, and
  one it found. Hits are the true reuse: ``hits / blocks`` is the true reuse
  fraction and ``hits * block_size`` the prompt tokens served from cache.
"""

import math


def request_figures(index, conversation_id, turn, tokens, prefill):
    """The per-request record written to the results."""
    reused = prefill.blocks - prefill.newly_cached
    return {
        "request": index,
        "conversation_id": conversation_id,
        "turn": turn,
        "prompt_tokens": tokens,
        "admitted": prefill.admitted,
        "blocks": prefill.blocks,
        "newly_cached_blocks": prefill.newly_cached,
        "reused_blocks": reused,
        "sharing_fraction": _ratio(reused, prefill.blocks),
        "lookups": prefill.lookups,
        "hits": prefill.hits,
        "evictions": prefill.evictions,
    }


def totals(records, block_size, vllm_hit_rate):
    """Figures over all requests; fractions are None where undefined."""
    admitted = [r for r in records if r["admitted"]]

    def total(key):
        return sum(r[key] for r in admitted)

    blocks = total("blocks")
    reused = total("reused_blocks")
    lookups, hits = total("lookups"), total("hits")
    prompt_tokens = total("prompt_tokens")
    # math.fsum: the exact sum, so the mean does not depend on summation order.
    per_request = [r["sharing_fraction"] for r in admitted]
    mean_sharing = math.fsum(per_request) / len(per_request) if per_request else None
    return {
        "requests": len(records),
        "admitted": len(admitted),
        "not_admitted": len(records) - len(admitted),
        "prompt_tokens": prompt_tokens,
        "blocks": blocks,
        "newly_cached_blocks": total("newly_cached_blocks"),
        "reused_blocks": reused,
        "sharing_fraction": _ratio(reused, blocks),
        "mean_request_sharing_fraction": mean_sharing,
        "vllm_hit_rate": vllm_hit_rate,
        "lookups": lookups,
        "hits": hits,
        "block_hit_rate": _ratio(hits, lookups),
        "true_reuse_fraction": _ratio(hits, blocks),
        "cached_prompt_tokens": hits * block_size,
        "token_hit_rate": _ratio(hits * block_size, prompt_tokens),
        "evictions": total("evictions"),
    }


def _ratio(part, whole):
    return part / whole if whole else None
