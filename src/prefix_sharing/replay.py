"""Replay a tokenized trace through vLLM's block manager, request by request."""

import logging

from prefix_sharing import metrics
from prefix_sharing.errors import UserError
from prefix_sharing.experiments import replay_requests
from prefix_sharing.token_store import TRACE_ORDER
from prefix_sharing.vllm_v0_adapter import (
    SCHEDULER,
    STUDY,
    VLLM_VERSION,
    V0BlockManager,
)

log = logging.getLogger(__name__)

# vLLM builds every block object up front: about 4.8 GB for 2 million blocks.
BYTES_PER_BLOCK = 2_400


def check_pool_memory(gpu_blocks, cpu_blocks):
    """Refuse a pool whose block objects alone would not fit in memory."""
    needed = (gpu_blocks + cpu_blocks) * BYTES_PER_BLOCK
    available = _available_memory()
    if available is not None and needed > available:
        raise UserError(
            f"{gpu_blocks:,} GPU and {cpu_blocks:,} CPU blocks would take about "
            f"{needed / 2**30:.1f} GiB for vLLM's block objects, more than the "
            f"{available / 2**30:.1f} GiB of memory available; use fewer blocks"
        )


def _available_memory():
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def replay(
    tokens,
    block_size=16,
    gpu_blocks=10_000,
    cpu_blocks=1_000,
    watermark=0.01,
    caching=True,
    request_limit=100,
    procedure=SCHEDULER,
    order=TRACE_ORDER,
):
    """Replay the first ``request_limit`` requests (None: all) in ``order``.

    ``tokens`` is a ``TokenizedTrace``. Returns the result document:
    configuration, totals and per-request figures.
    """
    count = len(tokens) if request_limit is None else min(request_limit, len(tokens))
    check_pool_memory(gpu_blocks, cpu_blocks)
    manager = V0BlockManager(
        block_size=block_size,
        gpu_blocks=gpu_blocks,
        cpu_blocks=cpu_blocks,
        watermark=watermark,
        caching=caching,
        procedure=procedure,
    )

    def prefill(index, token_ids):
        try:
            return manager.prefill(token_ids)
        except AssertionError:
            if procedure != STUDY:
                raise
            raise UserError(
                f"vLLM's evictor failed an assertion at request {index} under the "
                "study's procedure, which leaves every block the same access "
                "time; replay with the scheduler procedure instead"
            ) from None

    records = [record for record, _ in replay_requests(prefill, tokens, count, order)]
    config = {
        "block_size": block_size,
        "gpu_blocks": gpu_blocks,
        "cpu_blocks": cpu_blocks,
        "watermark": watermark,
        "caching": caching,
        "request_limit": request_limit,
        "procedure": procedure,
        "order": order,
        "block_manager": f"vllm {VLLM_VERSION} SelfAttnBlockSpaceManager",
    }
    return {
        "config": config,
        "totals": metrics.totals(records, block_size, manager.hit_rate()),
        "requests": records,
    }
