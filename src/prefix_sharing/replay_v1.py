"""Replay tokenized traces through today's vLLM (V1) KV-cache manager.

The side-by-side of ``prefix-sharing replay``: the same tokenized traces, the
same per-request figures and totals (``metrics``), written in the same layout,
but from vLLM 0.33.0's ``KVCacheManager`` instead of vLLM 0.6.6.post1's block
manager. It runs in the comparison environment (``requirements/compare.lock``),
so it imports only the parts of this package that need no vLLM:

    .venv-v1/bin/python -m prefix_sharing.replay_v1 --tokens tokens/ \\
        --experiments multi_turn,single_turn --out results/v1/
"""

import argparse
import logging
import math
import signal
import sys
from importlib import metadata
from pathlib import Path

from prefix_sharing import metrics, token_store
from prefix_sharing.cli import ORDER_HELP, check_writable, parse_experiments
from prefix_sharing.errors import UserError
from prefix_sharing.launcher import _stop_on_sigterm
from prefix_sharing.experiments import (
    EXPERIMENTS,
    replay_requests,
    write_experiment,
)
from prefix_sharing.outputs import together, write_json
from prefix_sharing.params import integer, optional_count
from prefix_sharing.token_store import ORDERS, TRACE_ORDER

log = logging.getLogger("prefix_sharing")

PROG = "python -m prefix_sharing.replay_v1"
DEFAULT_EXPERIMENTS = "multi_turn,single_turn"
_PROGRESS_SECONDS = 5.0


def check_environment():
    """Fail with one line unless the vLLM this replay is written for is here."""
    from prefix_sharing.vllm_v1_adapter import VLLM_VERSION

    try:
        found = metadata.version("vllm")
    except metadata.PackageNotFoundError:
        found = None
    if found != VLLM_VERSION:
        raise UserError(
            f"this replay needs vLLM {VLLM_VERSION} (requirements/compare.lock), "
            f"found {found or 'no vLLM'} in {sys.prefix}"
        )


def replay(tokens, block_size=16, gpu_blocks=10_000, caching=True,
           request_limit=100, order=TRACE_ORDER):
    """Replay the first ``request_limit`` requests (None: all) in ``order``.

    ``tokens`` is a ``TokenizedTrace``. Returns the result document:
    configuration, totals and per-request figures.
    """
    from prefix_sharing.vllm_v1_adapter import (
        HASH_ALGORITHM,
        VLLM_VERSION,
        V1KVCacheManager,
    )

    count = len(tokens) if request_limit is None else min(request_limit, len(tokens))
    manager = V1KVCacheManager(
        block_size=block_size, gpu_blocks=gpu_blocks, caching=caching
    )
    records = []
    for record, prefill in replay_requests(
        lambda _, token_ids: manager.prefill(token_ids), tokens, count, order
    ):
        # V1's own unit; equal to hits * block_size, V1 serving whole blocks.
        record["cached_prompt_tokens"] = prefill.cached_tokens
        records.append(record)
    config = {
        "block_size": block_size,
        "gpu_blocks": gpu_blocks,
        "caching": caching,
        "request_limit": request_limit,
        "order": order,
        "block_manager": f"vllm {VLLM_VERSION} KVCacheManager (V1)",
        "block_hash": HASH_ALGORITHM,
        # V1 counts its hit rate in prompt tokens, V0 in full blocks.
        "vllm_hit_rate_unit": "prompt tokens",
    }
    return {
        "config": config,
        "totals": metrics.totals(records, block_size, manager.hit_rate()),
        "requests": records,
    }


def run(args):
    """Replay each experiment; write NAME.json, NAME.requests.json, metrics.json."""
    check_environment()
    tokens_dir, out_dir = Path(args.tokens), Path(args.out)
    check_writable(out_dir)
    loaded = {}
    for name in args.experiments:
        kind, _ = EXPERIMENTS[name]
        if kind not in loaded:
            path = tokens_dir / f"{kind}.tokens"
            loaded[kind] = token_store.read_tokens(path)
            _check_capacity(loaded[kind], args, path)
    all_totals = {}
    for name in args.experiments:
        kind, caching = EXPERIMENTS[name]
        tokens = loaded[kind]
        log.info("replaying %s through vLLM's V1 KV-cache manager", name)
        result = replay(
            tokens,
            block_size=args.block_size,
            gpu_blocks=args.gpu_blocks,
            caching=caching,
            request_limit=args.requests,
            order=args.order,
        )
        all_totals[name] = write_experiment(
            out_dir, name, result, tokens, args.gpu_blocks
        )
    # The totals alone, as the V0 replay writes them.
    write_json(out_dir / "metrics.json", all_totals)


def _check_capacity(tokens, args, path):
    """Fail before replaying when not even the shortest request could fit."""
    lengths = tokens.lengths()[tokens.order(args.order)[: args.requests]]
    if len(lengths) == 0:
        raise UserError(f"{path}: the trace holds no request to replay")
    shortest = math.ceil(int(lengths.min()) / args.block_size)
    # V1 keeps one block of the pool, its null block, for itself.
    usable = args.gpu_blocks - 1
    if shortest > usable:
        raise UserError(
            f"a pool of {args.gpu_blocks} blocks holds {usable} blocks for a "
            f"request (V1 keeps one), and the shortest request of {path} needs "
            f"{shortest}: raise --gpu-blocks"
        )


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Replay tokenized traces through vLLM 0.33.0's V1 KV-cache "
        "manager; the results sit beside those of `prefix-sharing replay`.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--tokens", default="tokens",
                        help="folder of KIND.tokens files (default tokens)")
    parser.add_argument(
        "--experiments", type=parse_experiments,
        default=parse_experiments(DEFAULT_EXPERIMENTS),
        help=f"comma-separated, from {', '.join(EXPERIMENTS)} "
        f"(default {DEFAULT_EXPERIMENTS})",
    )
    parser.add_argument("--block-size", type=integer(1), default=16,
                        help="tokens per KV-cache block (default 16)")
    parser.add_argument(
        "--gpu-blocks", type=integer(2), default=10_000,
        help="blocks in the pool, V1's null block included (default 10000)",
    )
    parser.add_argument("--requests", type=optional_count, default=100,
                        help="replay the first N requests of each trace, or "
                        "'all' (default 100)")
    parser.add_argument("--order", choices=ORDERS, default=TRACE_ORDER,
                        help=ORDER_HELP)
    parser.add_argument("--out", default="results/v1", help="results folder")
    return parser


def main(argv=None):
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(message)s" if args.debug else "%(message)s",
        stream=sys.stderr,
    )
    try:
        with together():
            run(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
