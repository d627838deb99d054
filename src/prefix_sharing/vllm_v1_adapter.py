"""The one module that touches today's vLLM: its V1 KV-cache manager, for prefills.

Written against vLLM 0.33.0 (``vllm.v1.core.kv_cache_manager``). It lives in its
own environment (``requirements/compare.lock``), apart from the V0 replay, so
it imports nothing of this package that needs vLLM 0.6.6.post1.

The manager is driven as V1's scheduler drives it for a new request whose whole
prompt fits in one step: ``get_computed_blocks``, ``allocate_slots`` (which also
enters the prompt's full blocks in the cache), the prefix-cache statistics
recorded on admission, then ``free`` once the request is done. V1 keeps no
clock: a freed block joins the tail of the free queue (the tail block of a
request first) and allocation takes blocks from its head, evicting them from
the cache if they were cached. Splitting a long prompt into chunks would take
the same blocks in the same order, so one step stands for all of them.

Two kinds of units, so the figures line up with the V0 replay:

- V1's own: prompt tokens looked up and prompt tokens served from cache (what
  its ``PrefixCacheStats`` counts);
- V0's: full blocks looked up and found. V1 stops at the first block it does
  not find and never serves a prompt's last token from cache; every full block
  of the prompt is still counted as looked up, as V0 does, so that the two
  managers' hits are comparable.

vLLM picks a platform by probing the host while its V1 modules are imported.
The platform is pinned to the CPU first, so the figures do not depend on
whether the host has a GPU.
"""

import dataclasses
import os

VLLM_VERSION = "0.33.0"

# V1's default block hash (``CacheConfig.prefix_caching_hash_algo``).
HASH_ALGORITHM = "sha256"

# Status names shared with the V0 adapter: admitted, or can never fit.
OK = "OK"
NEVER = "NEVER"


@dataclasses.dataclass
class Prefill:
    """What the V1 manager did for one prompt; same fields as the V0 adapter's.

    blocks: length of the request's block table.
    newly_cached: growth of the manager's map of cached block hashes during
        ``allocate_slots``, the study's "newly allocated". The last, partly
        filled block never enters the map, and a second copy of a cached
        block (see ``hits``) does not grow it either.
    lookups, hits: full blocks of the prompt, and how many were served from
        cache (V0's units; ``hits * block_size == cached_tokens``).
    looked_up_tokens, cached_tokens: prompt tokens V1 looked up, and those it
        served from cache (V1's units).
    evictions: cached blocks evicted to make room for this prompt.
    """

    admitted: bool
    status: str
    blocks: int = 0
    newly_cached: int = 0
    lookups: int = 0
    hits: int = 0
    looked_up_tokens: int = 0
    cached_tokens: int = 0
    evictions: int = 0


def _import_vllm():
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    import vllm
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    if vllm.__version__ != VLLM_VERSION:
        raise RuntimeError(
            f"this adapter is written for vLLM {VLLM_VERSION}, "
            f"found {vllm.__version__}"
        )
    vllm.platforms.current_platform = CpuPlatform()
    import torch
    from vllm.distributed.kv_events import BlockRemoved
    from vllm.sampling_params import SamplingParams
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.core.kv_cache_manager import KVCacheManager
    from vllm.v1.kv_cache_interface import (
        FullAttentionSpec,
        KVCacheConfig,
        KVCacheGroupSpec,
    )
    from vllm.v1.request import Request

    return dict(
        torch=torch,
        BlockRemoved=BlockRemoved,
        SamplingParams=SamplingParams,
        get_hash_fn_by_name=get_hash_fn_by_name,
        kv_cache_utils=kv_cache_utils,
        KVCacheManager=KVCacheManager,
        FullAttentionSpec=FullAttentionSpec,
        KVCacheConfig=KVCacheConfig,
        KVCacheGroupSpec=KVCacheGroupSpec,
        Request=Request,
    )


class V1KVCacheManager:
    """vLLM's V1 ``KVCacheManager`` for one full-attention layer group.

    Holds one manager over ``gpu_blocks`` blocks, of which V1 keeps one (block
    0, its null block) for itself. Each prompt is admitted, cached and freed
    before the next one comes, so a prompt that is refused can never fit.

    Args:
        block_size: tokens per KV-cache block.
        gpu_blocks: blocks in the pool, the null block included.
        caching: prefix caching on (V1's default) or off.
    """

    def __init__(self, block_size=16, gpu_blocks=10_000, caching=True):
        v = _import_vllm()
        self.block_size = block_size
        self.gpu_blocks = gpu_blocks
        self.caching = caching
        # vLLM refuses to start when one request of max_model_len tokens could
        # not fit in the pool, so no admitted prompt is longer than the pool.
        self.max_model_len = gpu_blocks * block_size
        spec = v["FullAttentionSpec"](
            block_size=block_size,
            num_kv_heads=1,
            head_size=1,
            dtype=v["torch"].float32,
        )
        config = v["KVCacheConfig"](
            num_blocks=gpu_blocks,
            kv_cache_tensors=[],
            kv_cache_groups=[v["KVCacheGroupSpec"](["attention"], spec)],
        )
        self._manager = v["KVCacheManager"](
            config,
            max_model_len=self.max_model_len,
            scheduler_block_size=block_size,
            hash_block_size=block_size,
            enable_caching=caching,
            log_stats=True,
            enable_kv_cache_events=caching,
        )
        hash_fn = v["get_hash_fn_by_name"](HASH_ALGORITHM)
        v["kv_cache_utils"].init_none_hash(hash_fn)
        self._hasher = v["kv_cache_utils"].get_request_block_hasher(
            block_size, hash_fn
        )
        self._request = v["Request"]
        self._sampling = v["SamplingParams"](max_tokens=1)
        self._block_removed = v["BlockRemoved"]
        self._requests = 0

    def prefill(self, token_ids):
        """Run one prompt through the manager and free it again."""
        token_ids = list(token_ids)
        if not token_ids:
            raise ValueError("a prompt needs at least one token")
        self._requests += 1
        if len(token_ids) > self.max_model_len:
            # vLLM rejects such a prompt before it reaches the scheduler.
            return Prefill(admitted=False, status=NEVER)
        request = self._request(
            str(self._requests),
            token_ids,
            self._sampling,
            None,
            arrival_time=0.0,
            block_hasher=self._hasher,
        )
        manager = self._manager
        computed, cached_tokens, _ = manager.get_computed_blocks(request)
        cached_before = self._cached_count()
        new_blocks = manager.allocate_slots(
            request,
            len(token_ids) - cached_tokens,
            num_new_computed_tokens=cached_tokens,
            new_computed_blocks=computed,
            full_sequence_must_fit=True,
            has_scheduled_reqs=False,
        )
        if new_blocks is None:
            # Nothing else holds a block, so the pool never gets emptier.
            return Prefill(admitted=False, status=NEVER)
        manager.record_prefix_cache_stats(request, cached_tokens)
        newly_cached = self._cached_count() - cached_before
        blocks = len(manager.get_block_ids(request.request_id)[0])
        evictions = self._take_evictions()
        manager.free(request)
        if not self.caching:
            return Prefill(
                admitted=True, status=OK, blocks=blocks, newly_cached=blocks
            )
        # V1 serves whole blocks only: its hit ends on a block boundary.
        assert cached_tokens % self.block_size == 0
        return Prefill(
            admitted=True,
            status=OK,
            blocks=blocks,
            newly_cached=newly_cached,
            lookups=len(token_ids) // self.block_size,
            hits=cached_tokens // self.block_size,
            looked_up_tokens=len(token_ids),
            cached_tokens=cached_tokens,
            evictions=evictions,
        )

    def _cached_count(self):
        # Hashes in the cache; a block cached twice counts once.
        return len(self._manager.block_pool.cached_block_hash_to_block)

    def _take_evictions(self):
        # With one full-attention group, V1 removes a hash from its cache only
        # when it hands the block out again, so removals are evictions.
        return sum(
            len(event.block_hashes)
            for event in self._manager.take_events()
            if isinstance(event, self._block_removed)
        )

    def hit_rate(self):
        """V1's own prefix cache hit rate: prompt tokens served / looked up.

        Counts admitted prompts only, as V1's scheduler does. None without
        caching or before any look-up.
        """
        stats = self._manager.prefix_cache_stats
        if not self.caching or not stats.queries:
            return None
        return stats.hits / stats.queries
