"""Figures of the replay results, as PNG files beside the data they show.

Each figure is written with the CSV of the numbers it plots, so a reader can
check a curve without reading a plot. PNGs carry no timestamp or software
version, so equal results give equal bytes.
"""

import csv
import math
from collections import defaultdict
from pathlib import Path

from prefix_sharing.outputs import atomic_file

KIND_LABELS = {"multi_turn": "multi-turn", "single_turn": "single-turn"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 10, "svg.hashsalt": "0"})
    return plt


def save(figure, path):
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", metadata={"Software": None})


def write_csv(path, header, rows):
    with atomic_file(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def true_reuse(request):
    """Hits / blocks of one request: the share of its blocks found in cache."""
    return request["hits"] / request["blocks"] if request["blocks"] else 0.0


def sharing_by_turn(requests, out_dir):
    """Mean sharing of multi-turn requests by turn index, both accountings."""
    by_turn = defaultdict(list)
    for request in requests:
        if request["admitted"]:
            by_turn[request["turn"]].append(request)
    rows = []
    for turn in sorted(by_turn):
        group = by_turn[turn]
        rows.append((
            turn,
            len(group),
            sum(r["sharing_fraction"] for r in group) / len(group),
            sum(true_reuse(r) for r in group) / len(group),
        ))
    write_csv(out_dir / "sharing_by_turn.csv",
              ("turn", "requests", "mean_sharing_fraction", "mean_true_reuse"), rows)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    turns = [r[0] + 1 for r in rows]
    axis.plot(turns, [r[2] for r in rows], "o-", label='study\'s "reused" / blocks')
    axis.plot(turns, [r[3] for r in rows], "s-", label="true: cache hits / blocks")
    axis.set_xlabel("turn of the conversation (1 = first request)")
    axis.set_ylabel("mean share of the prompt's KV blocks")
    axis.set_ylim(0, 1)
    axis.set_title("Multi-turn: later turns reuse their history")
    axis.grid(alpha=0.3)
    axis.legend()
    for turn, count in zip(turns, (r[1] for r in rows)):
        axis.annotate(str(count), (turn, 0.02), ha="center", fontsize=7, color="gray")
    axis.text(0.99, 0.07, "gray: requests per turn", transform=axis.transAxes,
              ha="right", fontsize=7, color="gray")
    figure.tight_layout()
    save(figure, out_dir / "sharing_by_turn.png")
    plt.close(figure)


def reuse_cdf(requests_by_kind, out_dir):
    """CDF of the per-request true reuse, multi-turn against single-turn."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    rows = []
    for kind, requests in requests_by_kind.items():
        values = sorted(true_reuse(r) for r in requests if r["admitted"])
        shares = [(i + 1) / len(values) for i in range(len(values))]
        axis.step([0.0, *values], [0.0, *shares], where="post", linewidth=2,
                  label=KIND_LABELS[kind])
        rows.extend((kind, v, s) for v, s in zip(values, shares))
    write_csv(out_dir / "reuse_cdf.csv", ("trace", "true_reuse", "cumulative_share"),
              rows)
    axis.set_xlabel("share of a request's KV blocks found in cache (hits / blocks)")
    axis.set_ylabel("share of requests at or below")
    axis.set_xlim(-0.02, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title("Per-request block reuse")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    save(figure, out_dir / "reuse_cdf.png")
    plt.close(figure)


def multi_vs_single(totals_by_kind, out_dir):
    """Bars: the study's sharing fraction beside the true figures, per trace."""
    measures = (
        ("sharing_fraction", 'study\'s sharing ("reused" / blocks)'),
        ("true_reuse_fraction", "true reuse (hits / blocks)"),
        ("token_hit_rate", "prompt tokens served from cache"),
    )
    rows = [
        (kind, key, totals[key] or 0.0)
        for kind, totals in totals_by_kind.items()
        for key, _ in measures
    ]
    write_csv(out_dir / "multi_vs_single.csv", ("trace", "measure", "value"), rows)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    kinds = list(totals_by_kind)
    width = 0.8 / len(measures)
    for i, (key, label) in enumerate(measures):
        xs = [k + (i - 1) * width for k in range(len(kinds))]
        values = [totals_by_kind[kind][key] or 0.0 for kind in kinds]
        bars = axis.bar(xs, values, width, label=label)
        axis.bar_label(bars, fmt="%.3f", fontsize=7)
    axis.set_xticks(range(len(kinds)), [KIND_LABELS[k] for k in kinds])
    axis.set_ylabel("fraction")
    axis.set_ylim(0, 1)
    axis.set_title("Multi-turn against single-turn (prefix caching on)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    save(figure, out_dir / "multi_vs_single.png")
    plt.close(figure)


def draw_all(results_dir, out_dir):
    """Every figure of the main replay, from the files the replay wrote."""
    from prefix_sharing.outputs import read_json

    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = {
        kind: read_json(results_dir / f"{kind}.requests.json") for kind in KIND_LABELS
    }
    totals = {kind: read_json(results_dir / f"{kind}.json")["totals"]
              for kind in KIND_LABELS}
    sharing_by_turn(requests["multi_turn"], out_dir)
    reuse_cdf(requests, out_dir)
    multi_vs_single(totals, out_dir)


def _capacity_label(tokens):
    return "unbounded" if tokens is None else f"{tokens:,}"


def sweep_capacity(points, block_size, out_dir):
    """Hit rate against cache capacity at one block size, per trace."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9.0, 4.4))
    chosen = [p for p in points if p["caching"] and p["block_size"] == block_size]
    finite = sorted({p["capacity_tokens"] for p in chosen} - {None})
    positions = {c: i for i, c in enumerate([*finite, None])}
    for trace, marker in (("multi_turn", "o"), ("single_turn", "s")):
        line = sorted((p for p in chosen if p["trace"] == trace),
                      key=lambda p: positions[p["capacity_tokens"]])
        if not line:
            continue
        xs = [positions[p["capacity_tokens"]] for p in line]
        axis.plot(xs, [p["token_hit_rate"] or 0 for p in line], marker + "-",
                  label=f"{KIND_LABELS[trace]}: prompt tokens from cache")
        axis.plot(xs, [p["sharing_fraction"] or 0 for p in line], marker + ":",
                  alpha=0.6, label=f'{KIND_LABELS[trace]}: study\'s "sharing"')
    axis.set_xticks(range(len(positions)),
                    [_capacity_label(c) for c in positions], rotation=30)
    axis.set_xlabel("GPU KV-cache capacity (tokens)")
    axis.set_ylabel("fraction")
    axis.set_ylim(0, 1.05)
    axis.set_title(f"Hit rate against cache capacity (block size {block_size})")
    axis.grid(alpha=0.3)
    # Outside the axes: the lines fill the top, the bottom and the right.
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.text(0.99, 0.02, 'dotted: the study\'s "sharing", meaningless once '
                "blocks are evicted", fontsize=7, ha="right", color="gray")
    figure.tight_layout()
    save(figure, out_dir / "hit_rate_by_capacity.png")
    plt.close(figure)


def sweep_block_size(points, out_dir):
    """Hit rate against block size, one line per trace and capacity."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.8, 4.2))
    sizes = sorted({p["block_size"] for p in points})
    capacities = sorted({p["capacity_tokens"] for p in points
                         if sum(q["capacity_tokens"] == p["capacity_tokens"]
                                for q in points) > 2}, key=lambda c: c or math.inf)
    for trace, style in (("multi_turn", "-"), ("single_turn", "--")):
        for capacity in capacities:
            line = sorted((p for p in points if p["caching"] and p["trace"] == trace
                           and p["capacity_tokens"] == capacity),
                          key=lambda p: p["block_size"])
            if len(line) < 2:
                continue
            axis.plot([p["block_size"] for p in line],
                      [p["token_hit_rate"] or 0 for p in line], "o" + style,
                      label=f"{KIND_LABELS[trace]}, capacity "
                      f"{_capacity_label(capacity)} tokens")
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(s) for s in sizes])
    axis.set_xlabel("block size (tokens per KV-cache block)")
    axis.set_ylabel("share of prompt tokens served from cache")
    axis.set_ylim(0, 1.05)
    axis.set_title("Hit rate against block size")
    axis.grid(alpha=0.3)
    if axis.get_lines():
        axis.legend(fontsize=7)
    else:
        axis.text(0.5, 0.5, "no capacity was swept over two or more block sizes",
                  transform=axis.transAxes, ha="center", color="gray")
    figure.tight_layout()
    save(figure, out_dir / "hit_rate_by_block_size.png")
    plt.close(figure)


SWEEP_COLUMNS = (
    "trace", "block_size", "capacity_tokens", "caching", "gpu_blocks", "requests",
    "not_admitted", "prompt_tokens", "lookups", "hits", "block_hit_rate",
    "token_hit_rate", "evictions", "sharing_fraction", "sharing_fraction_meaningful",
)


def write_sweep_csv(points, out_dir):
    write_csv(Path(out_dir) / "points.csv", SWEEP_COLUMNS,
              [[p[c] for c in SWEEP_COLUMNS] for p in points])


def draw_sweep(points, base_block_size, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_sweep_csv(points, out_dir)
    sweep_capacity(points, base_block_size, out_dir)
    sweep_block_size(points, out_dir)
