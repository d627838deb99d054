"""The one module that touches vLLM: its V0 block manager, driven for prefills.

Written against vLLM 0.6.6.post1 (``vllm.core.block_manager``). Reading the
allocator's figures needs its private fields (``_allocators``,
``_cached_blocks``, ``metric_data``, ``evictor``); they are reached only here,
so a vLLM upgrade breaks this file and nothing else.

vLLM picks a platform by probing the host. The replay never touches a device,
but the block allocator asks the platform a question, so the platform is
pinned to the CPU before the block manager is imported: results do not depend
on whether the host has a GPU.
"""

import collections
import dataclasses
import os

VLLM_VERSION = "0.6.6.post1"

# The two ways of driving the block manager (see ``V0BlockManager``).
SCHEDULER = "scheduler"
STUDY = "study"
PROCEDURES = (SCHEDULER, STUDY)


def _import_vllm():
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    import vllm
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    if vllm.__version__ != VLLM_VERSION:
        raise RuntimeError(
            f"this adapter is written for vLLM {VLLM_VERSION}, found {vllm.__version__}"
        )
    vllm.platforms.current_platform = CpuPlatform()
    from vllm.core.block_manager import SelfAttnBlockSpaceManager
    from vllm.core.interfaces import AllocStatus
    from vllm.inputs import token_inputs
    from vllm.sequence import Sequence, SequenceGroup
    from vllm.utils import Device

    return SelfAttnBlockSpaceManager, AllocStatus, token_inputs, Sequence, \
        SequenceGroup, Device


@dataclasses.dataclass
class Prefill:
    """What the block manager did for one prompt.

    blocks: length of the sequence's block table.
    newly_cached: growth of the allocator's map of cached blocks during
        ``allocate``, the study's "newly allocated" (every block when caching
        is off). The last, partly filled block never enters that map, and
        evicted blocks leave it, so this undercounts the blocks that were
        really new.
    lookups, hits: full blocks the allocator looked up in its cache, and how
        many it found there. Only these measure real reuse.
    evictions: cached blocks evicted to make room for this prompt.
    """

    admitted: bool
    status: str
    blocks: int = 0
    newly_cached: int = 0
    lookups: int = 0
    hits: int = 0
    evictions: int = 0


def _on_call(owner, method_name, hook):
    """Call ``hook`` with the arguments of every call to ``owner.method_name``."""
    original = getattr(owner, method_name)

    def observed(*args, **kwargs):
        hook(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, method_name, observed)


class V0BlockManager:
    """vLLM's ``SelfAttnBlockSpaceManager``, fed one prompt at a time.

    ``procedure`` chooses how each prompt goes through it:

    - ``"scheduler"``: as vLLM's scheduler handles a prefill: ``can_allocate``,
      ``allocate``, record an access at a time that grows with every request,
      look up the computed blocks, mark them computed, then ``free``. Blocks
      freed this way carry real access times, so LRU eviction works.
    - ``"study"``: the published study's procedure: the same minus the access
      time and the marking. Every block keeps the default access time; once
      the cache must evict, vLLM's evictor then fails an assertion.

    No decode step runs: answers are never generated.
    """

    def __init__(
        self,
        block_size=16,
        gpu_blocks=10_000,
        cpu_blocks=1_000,
        watermark=0.01,
        caching=True,
        procedure=SCHEDULER,
    ):
        if procedure not in PROCEDURES:
            raise ValueError(f"procedure must be one of {PROCEDURES}")
        (manager_class, self._alloc_status, self._token_inputs, self._sequence,
         self._sequence_group, device) = _import_vllm()
        self.block_size = block_size
        self.caching = caching
        self.procedure = procedure
        self._manager = manager_class(
            block_size=block_size,
            num_gpu_blocks=gpu_blocks,
            num_cpu_blocks=cpu_blocks,
            watermark=watermark,
            sliding_window=None,
            enable_caching=caching,
        )
        self._gpu = self._manager.block_allocator._allocators[device.GPU]
        self._device = device
        self._requests = 0
        self._tally = collections.Counter()
        if caching:
            _on_call(self._gpu.metric_data, "query", self._count_lookup)
            _on_call(self._gpu.evictor, "evict", self._count_eviction)

    def prefill(self, token_ids):
        """Run one prompt through the block manager and free it again."""
        self._requests += 1
        sequence = self._sequence(
            self._requests,
            inputs=self._token_inputs(list(token_ids)),
            block_size=self.block_size,
        )
        group = self._sequence_group(
            request_id=str(self._requests), seqs=[sequence], arrival_time=0.0
        )
        status = self._manager.can_allocate(group)
        if status != self._alloc_status.OK:
            return Prefill(admitted=False, status=status.name)
        before = self._counts()
        self._manager.allocate(group)
        after = self._counts()
        blocks = len(self._manager.block_tables[sequence.seq_id].physical_block_ids)
        newly_cached = after[0] - before[0] if self.caching else blocks
        if self.procedure == SCHEDULER:
            self._manager.access_all_blocks_in_seq(sequence, float(self._requests))
        self._manager.get_common_computed_block_ids([sequence])
        if self.procedure == SCHEDULER:
            self._manager.mark_blocks_as_computed(group, len(token_ids))
        self._manager.free(sequence)
        return Prefill(
            admitted=True,
            status=status.name,
            blocks=blocks,
            newly_cached=newly_cached,
            lookups=after[1] - before[1],
            hits=after[2] - before[2],
            evictions=after[3] - before[3],
        )

    def _count_lookup(self, hit):
        self._tally["lookups"] += 1
        self._tally["hits"] += bool(hit)

    def _count_eviction(self):
        self._tally["evictions"] += 1

    def _counts(self):
        # Without caching there is no map of cached blocks: every block is new.
        cached = len(self._gpu._cached_blocks) if self.caching else 0
        tally = self._tally
        return cached, tally["lookups"], tally["hits"], tally["evictions"]

    def hit_rate(self):
        """vLLM's own prefix cache hit rate over every look-up so far.

        None without caching: vLLM then has no hit rate to give.
        """
        if not self.caching:
            return None
        return self._manager.get_prefix_cache_hit_rate(self._device.GPU)
