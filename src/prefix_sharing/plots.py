"""Figures of the replay results, as PNG files beside the data they show.

Each figure is written with the CSV of the numbers it plots, so a reader can
check a curve without reading a plot. PNGs carry no timestamp or software
version, so equal results give equal bytes.
"""

import csv
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
