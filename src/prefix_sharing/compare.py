"""V0 against V1: the same traces through both vLLM releases, side by side.

Both replays write the same figures in the same units (``metrics``), so the
comparison is a table of them, the difference, and a plot. Why the managers
differ where they do is written in REPRODUCE.md and pinned by
``tests/test_manager_differences.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

from prefix_sharing.errors import UserError

# Figures compared, in the units both managers share.
FIGURES = (
    ("admitted", "requests admitted"),
    ("prompt_tokens", "prompt tokens"),
    ("blocks", "blocks in block tables"),
    ("lookups", "full-block look-ups"),
    ("hits", "full-block hits"),
    ("cached_prompt_tokens", "prompt tokens served from cache"),
    ("token_hit_rate", "share of prompt tokens from cache"),
    ("block_hit_rate", "hits / look-ups"),
    ("evictions", "evictions"),
    ("vllm_hit_rate", "vLLM's own hit rate"),
)
V1_PYTHON = ".venv-v1/bin/python"


def run_v1(args, module="prefix_sharing.replay_v1"):
    """Run ``module`` in the V1 environment, which never meets V0's."""
    python = Path(os.environ.get("PREFIX_SHARING_V1_PYTHON", V1_PYTHON))
    if not python.exists():
        raise UserError(
            f"{python}: the comparison environment is missing; "
            "`./run.sh compare` sets it up from requirements/compare.lock"
        )
    command = [str(python), "-m", module, *args]
    done = subprocess.run(command)
    if done.returncode:
        sys.exit(done.returncode)


def compare(v0_results, v1_results):
    """Rows of figure, V0, V1 and difference per experiment."""
    rows = []
    for name in v0_results:
        if name not in v1_results:
            continue
        v0, v1 = v0_results[name]["totals"], v1_results[name]["totals"]
        for key, label in FIGURES:
            a, b = v0.get(key), v1.get(key)
            difference = b - a if isinstance(a, (int, float)) and isinstance(
                b, (int, float)) else None
            rows.append({"experiment": name, "figure": label, "v0": a, "v1": b,
                         "difference": difference})
    return rows


def format_table(rows, v1_unit):
    lines = [f"{'experiment':<12} {'figure':<34} {'V0 (0.6.6.post1)':>22} "
             f"{'V1 (0.33.0)':>22} {'V1 - V0':>12}"]
    for row in rows:
        lines.append(
            f"{row['experiment']:<12} {row['figure']:<34} {_cell(row['v0']):>22} "
            f"{_cell(row['v1']):>22} {_cell(row['difference']):>12}"
        )
    lines.append("")
    lines.append("vLLM's own hit rate counts full blocks in V0 and "
                 f"{v1_unit} in V1.")
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6f}"


def plot(rows, out_path):
    from prefix_sharing.plots import _pyplot, save

    measures = ("share of prompt tokens from cache", "hits / look-ups")
    chosen = [r for r in rows if r["figure"] in measures]
    experiments = list(dict.fromkeys(r["experiment"] for r in chosen))
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    width = 0.2
    for i, (manager, label) in enumerate((("v0", "V0 block manager (0.6.6)"),
                                          ("v1", "V1 KVCacheManager (0.33.0)"))):
        for j, measure in enumerate(measures):
            values = [next(r[manager] for r in chosen if r["experiment"] == e
                           and r["figure"] == measure) or 0 for e in experiments]
            xs = [k + (2 * i + j - 1.5) * width for k in range(len(experiments))]
            bars = axis.bar(xs, values, width, label=f"{label}: {measure}",
                            hatch="//" if j else None)
            axis.bar_label(bars, fmt="%.3f", fontsize=6)
    axis.set_xticks(range(len(experiments)), [e.replace("_", "-")
                                              for e in experiments])
    axis.set_ylabel("fraction")
    axis.set_ylim(0, 1)
    axis.set_title("The same traces through vLLM V0 and V1")
    axis.legend(fontsize=7)
    figure.tight_layout()
    save(figure, out_path)
    plt.close(figure)


# --- sweeps ----------------------------------------------------------------

SWEEP_FIGURES = ("gpu_blocks", "not_admitted", "token_hit_rate", "block_hit_rate",
                 "evictions")
SWEEP_COLUMNS = ("trace", "block_size", "capacity_tokens", "caching") + tuple(
    f"{manager}_{figure}" for figure in SWEEP_FIGURES for manager in ("v0", "v1"))


def compare_sweeps(v0_points, v1_points):
    """One row per sweep point that both managers replayed, in V0's order.

    Both arguments map a point's label to its figures (a sweep's metrics.json).
    """
    rows = []
    for label, v0 in v0_points.items():
        v1 = v1_points.get(label)
        if v1 is None:
            continue
        row = {key: v0[key] for key in SWEEP_COLUMNS[:4]}
        for figure in SWEEP_FIGURES:
            row[f"v0_{figure}"] = v0[figure]
            row[f"v1_{figure}"] = v1[figure]
        rows.append(row)
    return rows


def format_sweep_table(rows):
    lines = [f"{'trace':<12} {'block':>5} {'capacity':>11} {'caching':>7} "
             f"{'V0 tokens from cache':>20} {'V1 tokens from cache':>20} "
             f"{'V0 evictions':>13} {'V1 evictions':>13}"]
    for row in rows:
        capacity = row["capacity_tokens"]
        lines.append(
            f"{row['trace']:<12} {row['block_size']:>5} "
            f"{'unbounded' if capacity is None else f'{capacity:,}':>11} "
            f"{'on' if row['caching'] else 'off':>7} "
            f"{_cell(row['v0_token_hit_rate']):>20} "
            f"{_cell(row['v1_token_hit_rate']):>20} "
            f"{_cell(row['v0_evictions']):>13} {_cell(row['v1_evictions']):>13}"
        )
    lines.append("")
    lines.append("tokens from cache: share of prompt tokens the manager served "
                 "from its cache.")
    return "\n".join(lines)


def plot_sweeps(rows, base_block_size, out_dir):
    """Hit rate against capacity and against block size, V0 solid, V1 dashed."""
    from prefix_sharing.plots import KIND_LABELS, _capacity_label, _pyplot, save

    plt = _pyplot()
    caching = [r for r in rows if r["caching"]]
    styles = {"v0": ("-", "V0 0.6.6"), "v1": ("--", "V1 0.33.0")}
    markers = {"multi_turn": "o", "single_turn": "s"}

    figure, axis = plt.subplots(figsize=(6.8, 4.2))
    chosen = [r for r in caching if r["block_size"] == base_block_size]
    finite = sorted({r["capacity_tokens"] for r in chosen} - {None})
    positions = {c: i for i, c in enumerate([*finite, None])}
    for trace, marker in markers.items():
        line = sorted((r for r in chosen if r["trace"] == trace),
                      key=lambda r: positions[r["capacity_tokens"]])
        for manager, (style, name) in styles.items():
            if line:
                axis.plot([positions[r["capacity_tokens"]] for r in line],
                          [r[f"{manager}_token_hit_rate"] or 0 for r in line],
                          marker + style, label=f"{KIND_LABELS[trace]}, {name}")
    axis.set_xticks(range(len(positions)),
                    [_capacity_label(c) for c in positions], rotation=30)
    axis.set_xlabel("GPU KV-cache capacity (tokens)")
    axis.set_ylabel("share of prompt tokens served from cache")
    axis.set_ylim(0, 1.05)
    axis.set_title(f"V0 against V1 over cache capacity (block size "
                   f"{base_block_size})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save(figure, Path(out_dir) / "hit_rate_by_capacity.png")
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6.8, 4.2))
    sizes = sorted({r["block_size"] for r in caching})
    groups = {}
    for row in caching:
        groups.setdefault((row["trace"], row["capacity_tokens"]), []).append(row)
    for (trace, capacity), line in groups.items():
        if len(line) < 2:
            continue
        line.sort(key=lambda r: r["block_size"])
        for manager, (style, name) in styles.items():
            axis.plot([r["block_size"] for r in line],
                      [r[f"{manager}_token_hit_rate"] or 0 for r in line],
                      markers[trace] + style,
                      label=f"{KIND_LABELS[trace]}, {_capacity_label(capacity)} "
                      f"tokens, {name}")
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(s) for s in sizes])
    axis.set_xlabel("block size (tokens per KV-cache block)")
    axis.set_ylabel("share of prompt tokens served from cache")
    axis.set_ylim(0, 1.05)
    axis.set_title("V0 against V1 over block size")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6)
    figure.tight_layout()
    save(figure, Path(out_dir) / "hit_rate_by_block_size.png")
    plt.close(figure)
