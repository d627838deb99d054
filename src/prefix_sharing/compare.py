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


def run_v1(args):
    """Run the V1 replay in its own environment, which never meets V0's."""
    python = Path(os.environ.get("PREFIX_SHARING_V1_PYTHON", V1_PYTHON))
    if not python.exists():
        raise UserError(
            f"{python}: the comparison environment is missing; "
            "`./run.sh compare` sets it up from requirements/compare.lock"
        )
    command = [str(python), "-m", "prefix_sharing.replay_v1", *args]
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
