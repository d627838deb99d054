"""Sweeps of cache capacity and block size over whole traces.

A *sweep point* is one replay of a whole tokenized trace with one block size
and one GPU cache capacity (or caching off). Capacities are given in tokens,
so points of different block sizes hold the same amount of KV cache; the
block count is ``capacity // block_size``. "Unbounded" means a pool sized to
the work: every distinct full block of the trace fits, plus the largest
request, so nothing is ever evicted. vLLM builds every block object up front,
so the pool is never larger than that.

Under eviction the study's "reused" count is meaningless (evicted blocks
leave the map whose growth it counts); each point says whether it is, and the
figures to read are the allocator's hits and look-ups.

Points run in parallel: on a Ray cluster when an address is given (every
node must see the token files at the same path), else in local processes.
"""

import dataclasses
import logging
import math
import os
import time

from prefix_sharing import token_store
from prefix_sharing.token_store import TRACE_ORDER

log = logging.getLogger(__name__)

UNBOUNDED = None


@dataclasses.dataclass(frozen=True)
class Point:
    trace: str  # "multi_turn" or "single_turn"
    block_size: int
    capacity_tokens: int | None  # None: unbounded
    caching: bool = True

    @property
    def label(self):
        capacity = (
            "unbounded" if self.capacity_tokens is None else f"{self.capacity_tokens}"
        )
        caching = "" if self.caching else ", caching off"
        return f"{self.trace} block {self.block_size} capacity {capacity}{caching}"


def plan(traces, block_sizes, capacities, block_size_capacities, base_block_size):
    """The points of both sweeps and the caching-off baseline, without repeats.

    Capacity sweep: every capacity at ``base_block_size``. Block-size sweep:
    every block size at each of ``block_size_capacities``. Baseline: caching
    off at ``base_block_size``, unbounded.
    """
    points = []
    for trace in traces:
        points += [Point(trace, base_block_size, c) for c in capacities]
        points += [
            Point(trace, b, c) for c in block_size_capacities for b in block_sizes
        ]
        points.append(Point(trace, base_block_size, UNBOUNDED, caching=False))
    return list(dict.fromkeys(points))


def distinct_full_blocks(tokens, block_size):
    """How many different full blocks (by whole prefix) the trace holds."""
    seen = set()
    ids, offsets = tokens.ids, tokens.offsets
    for index in range(len(tokens)):
        start, end = int(offsets[index]), int(offsets[index + 1])
        prefix = 0
        for block_start in range(start, end - block_size + 1, block_size):
            prefix = hash((prefix, ids[block_start:block_start + block_size].tobytes()))
            seen.add(prefix)
    return len(seen)


def gpu_blocks_for(point, tokens, watermark):
    """The GPU pool of a point, in blocks."""
    if point.capacity_tokens is not None:
        return max(1, point.capacity_tokens // point.block_size)
    largest = int(math.ceil(int(tokens.lengths().max()) / point.block_size))
    distinct = distinct_full_blocks(tokens, point.block_size) if point.caching else 0
    return math.ceil((distinct + largest) / (1.0 - watermark)) + 1


_loaded = {}

# The block managers a sweep can replay through; V1 runs in its own environment.
MANAGERS = ("v0", "v1")


def run_point(point, tokens_path, watermark=0.01, manager="v0", order=TRACE_ORDER):
    """Replay one point; returns its figures (safe to call in any process).

    V1 has no watermark; its pool is sized as V0's without one, and the extra
    block of an unbounded pool is V1's null block.
    """
    if tokens_path not in _loaded:
        _loaded.clear()
        _loaded[tokens_path] = token_store.read_tokens(tokens_path)
    tokens = _loaded[tokens_path]
    started = time.monotonic()
    if manager == "v0":
        from prefix_sharing.replay import replay

        gpu_blocks = gpu_blocks_for(point, tokens, watermark)
        result = replay(tokens, block_size=point.block_size, gpu_blocks=gpu_blocks,
                        cpu_blocks=0, watermark=watermark, caching=point.caching,
                        request_limit=None, order=order)
    else:
        from prefix_sharing.replay_v1 import replay

        gpu_blocks = gpu_blocks_for(point, tokens, 0.0)
        result = replay(tokens, block_size=point.block_size, gpu_blocks=gpu_blocks,
                        caching=point.caching, request_limit=None, order=order)
    totals = result["totals"]
    figures = dataclasses.asdict(point) | {"gpu_blocks": gpu_blocks} | totals
    figures["sharing_fraction_meaningful"] = totals["evictions"] == 0
    seconds = time.monotonic() - started
    return figures, seconds


def _worker_logging(level):
    """A worker starts without logging: show its progress, named by point."""
    logging.basicConfig(level=level, format="%(message)s")


def _run_labelled(point, *args):
    handler = logging.getLogger().handlers[0]
    handler.setFormatter(logging.Formatter(f"{point.label}: %(message)s"))
    return run_point(point, *args)


def _run_local(jobs, workers):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    level = logging.getLogger("prefix_sharing").getEffectiveLevel()
    with context.Pool(workers, _worker_logging, (level,)) as pool:
        pending = [pool.apply_async(_run_labelled, job) for job in jobs]
        for job, handle in zip(jobs, pending):
            yield job[0], handle.get()


def _run_ray(jobs, address):
    import ray

    if address == "local":
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(run_point)
        futures = [remote.remote(*job) for job in jobs]
        for job, future in zip(jobs, futures):
            yield job[0], ray.get(future)
    finally:
        ray.shutdown()


def run_all(points, tokens_dir, watermark=0.01, workers=None, ray_address=None,
            manager="v0", order=TRACE_ORDER):
    """Figures of every point, in plan order, with progress in the log."""
    jobs = [
        (point, os.path.join(str(tokens_dir), f"{point.trace}.tokens"), watermark,
         manager, order)
        for point in points
    ]
    # Longest first, so the parallel tail is short.
    jobs.sort(key=lambda job: (job[0].trace != "multi_turn", job[0].block_size))
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if ray_address:
        finished = _run_ray(jobs, ray_address)
    else:
        finished = _run_local(jobs, workers)
    by_point = {}
    for done, (point, (figures, seconds)) in enumerate(finished, start=1):
        by_point[point] = figures
        log.info(
            "sweep point %d of %d: %s: block hit rate %s, %d evictions (%.0f s)",
            done, len(jobs), point.label, _rate(figures["block_hit_rate"]),
            figures["evictions"], seconds,
        )
    return [by_point[point] for point in points]


def _rate(value):
    return "-" if value is None else f"{value:.4f}"
