"""Compare reproduced figures with the published study's, figure by figure.

``results/published.json`` holds the study's figures, derived once from its
own output files by ``derive_published``. Counts must match exactly and
fractions within ``FRACTION_TOLERANCE``. The comparison only makes sense for
the published configuration; for any other, every row reads "not comparable"
and the check passes, so studies of other data or parameters can run the whole
pipeline.
"""

import json
import math
from pathlib import Path

from prefix_sharing.tokenizer import OPT_EQUIVALENTS

FRACTION_TOLERANCE = 1e-12

SOURCE = (
    "A study of prefix sharing in LLM serving (repository tongwu02/vllm, branch "
    "feature/hongji_wang): its output files multi_turn_prefix_caching.json, "
    "single_turn_prefix_caching.json and multi_turn_no_prefix_caching.json"
)

# The configuration the published figures were measured with.
PUBLISHED_CONFIG = {
    "conversations": 100,
    "drop_line_separators": True,
    "block_size": 16,
    "gpu_blocks": 10_000,
    "cpu_blocks": 1_000,
    "watermark": 0.01,
    "request_limit": 100,
}

# figure in our results -> (label, key in the study's totals)
_FIGURES = (
    ("requests", "requests", "total_requests"),
    ("prompt_tokens", "prompt tokens", "total_tokens"),
    ("blocks", "blocks in block tables", "total_blocks"),
    ("reused_blocks", 'blocks "reused"', "total_blocks_reused"),
    ("newly_cached_blocks", "blocks newly allocated", "total_blocks_newly_allocated"),
    ("sharing_fraction", "overall sharing fraction", "overall_sharing_fraction"),
    (
        "mean_request_sharing_fraction",
        "mean per-request sharing",
        "avg_sharing_fraction_per_request",
    ),
    ("vllm_hit_rate", "vLLM prefix cache hit rate", "final_cache_hit_rate"),
)
_PER_REQUEST = (
    ("prompt_tokens", "total_tokens"),
    ("blocks", "total_blocks"),
    ("reused_blocks", "blocks_reused"),
)
# Beside each published figure, the true figure that says what it meant.
_TRUE_BESIDE = {
    "prompt_tokens": ("cached_prompt_tokens", "tokens served from cache"),
    "reused_blocks": ("hits", "full-block hits"),
    "newly_cached_blocks": ("lookups", "full-block look-ups"),
    "sharing_fraction": ("true_reuse_fraction", "hits / blocks"),
    "vllm_hit_rate": ("block_hit_rate", "hits / look-ups"),
}
EXPERIMENT_LABELS = {
    "multi_turn": "multi-turn, prefix caching on",
    "single_turn": "single-turn, prefix caching on",
    "multi_turn_no_caching": "multi-turn, prefix caching off",
    "single_turn_no_caching": "single-turn, prefix caching off",
}


def derive_published(folder):
    """The study's figures from its own output files, as ``published.json``."""
    folder = Path(folder)
    experiments = {}
    for name, file_name in (
        ("multi_turn", "multi_turn_prefix_caching.json"),
        ("single_turn", "single_turn_prefix_caching.json"),
    ):
        study = json.loads((folder / file_name).read_text(encoding="utf-8"))
        per_request = study["request_metrics"]
        experiments[name] = {
            "figures": {ours: study[theirs] for ours, _, theirs in _FIGURES},
            "per_request": {
                ours: [r[theirs] for r in per_request] for ours, theirs in _PER_REQUEST
            },
        }
    baseline = json.loads(
        (folder / "multi_turn_no_prefix_caching.json").read_text(encoding="utf-8")
    )
    experiments["multi_turn_no_caching"] = {
        "figures": {
            "requests": baseline["total_requests"],
            "blocks": baseline["total_blocks_allocated"],
            # The study counts no block as reused without caching.
            "reused_blocks": baseline["total_blocks_reused"],
        },
    }
    return {
        "source": SOURCE,
        "configuration": PUBLISHED_CONFIG | {"tokenizer": "facebook/opt-125m"},
        "experiments": experiments,
    }


# The records the study read: the first 101 of ShareGPT V3 (one has no
# message left, so they give 100 conversations), as canonical JSON; the same
# whether they come from the whole download, the bundled copy or JSON lines.
PUBLISHED_RECORDS_SHA256 = (
    "0370a43bd57f2907e39706da3f40a2ef85f190072d3b5b30623cd1d05c912f32"
)


def comparable(result):
    """Whether a result was produced with the published data and configuration."""
    used = result["config"] | result["trace"]
    if any(used.get(key) != value for key, value in PUBLISHED_CONFIG.items()):
        return False
    if result["trace"]["data"].get("records_sha256") != PUBLISHED_RECORDS_SHA256:
        return False
    return result["tokenizer"]["name"] in OPT_EQUIVALENTS


def compare(published, results):
    """Rows of the check for every experiment that has results.

    ``results`` maps experiment name to its result document. Each row is a
    dict with experiment, figure, published, reproduced, difference, verdict
    and the true figure beside it.
    """
    rows = []
    for name, result in results.items():
        expected = published["experiments"].get(name)
        totals = result["totals"]
        is_comparable = comparable(result)
        for key, label, _ in _FIGURES:
            if key not in totals:
                continue
            want = expected["figures"].get(key) if expected else None
            got = totals[key]
            row = _row(name, label, want, got, is_comparable)
            if key in _TRUE_BESIDE and result["config"]["caching"]:
                true_key, true_label = _TRUE_BESIDE[key]
                row["true"] = totals[true_key]
                row["true_label"] = true_label
            rows.append(row)
        if expected and "per_request" in expected:
            for key, _ in _PER_REQUEST:
                want = expected["per_request"][key]
                got = [r[key] for r in result["requests"]]
                rows.append(_list_row(name, key, want, got, is_comparable))
    return rows


def _row(experiment, label, want, got, is_comparable):
    row = {
        "experiment": experiment,
        "figure": label,
        "published": want,
        "reproduced": got,
        "difference": None,
        "verdict": "not published",
    }
    if want is None:
        return row
    if not is_comparable:
        row["verdict"] = "not comparable"
        return row
    if got is None:
        row["verdict"] = "MISMATCH"
        return row
    row["difference"] = got - want
    if isinstance(want, int) and isinstance(got, int):
        ok = got == want
    else:
        ok = math.isclose(got, want, rel_tol=0.0, abs_tol=FRACTION_TOLERANCE)
    row["verdict"] = "match" if ok else "MISMATCH"
    return row


def _list_row(experiment, key, want, got, is_comparable):
    label = "per-request " + key.replace("_", " ")
    differing = sum(a != b for a, b in zip(want, got)) + abs(len(want) - len(got))
    row = {
        "experiment": experiment,
        "figure": label,
        "published": f"{len(want)} values",
        "reproduced": f"{len(got) - differing} of {len(got)} equal",
        "difference": differing,
        "verdict": "match" if differing == 0 else "MISMATCH",
    }
    if not is_comparable:
        row["difference"] = None
        row["verdict"] = "not comparable"
    return row


def verdict(rows):
    """"pass", "fail" or "not comparable" for a whole check."""
    verdicts = {row["verdict"] for row in rows}
    if "MISMATCH" in verdicts:
        return "fail"
    # A pass needs every published figure compared, none left aside.
    if "match" in verdicts and "not comparable" not in verdicts:
        return "pass"
    return "not comparable"


def summary_line(rows):
    """One line that says how the check ended and, on failure, where."""
    outcome = verdict(rows)
    if outcome == "pass":
        return "check passed: every published figure is reproduced"
    if outcome == "not comparable":
        aside = sorted({r["experiment"] for r in rows
                        if r["verdict"] == "not comparable"})
        if not aside:
            return "check not comparable: no published figure to compare with"
        return (
            "check not comparable: the results of " + ", ".join(aside) + " come "
            "from other data or other parameters than the published "
            "configuration, so they were not compared"
        )
    failed = [
        f"{r['experiment']}: {r['figure']} (published {_number(r['published'])}, "
        f"reproduced {_number(r['reproduced'])})"
        for r in rows
        if r["verdict"] == "MISMATCH"
    ]
    return "check FAILED: " + "; ".join(failed)


def format_table(rows):
    """The check as a plain-text table, one section per experiment."""
    header = ("figure", "published", "reproduced", "difference", "verdict", "true")
    widths = (28, 22, 22, 11, 14, 0)
    lines = []
    experiment = None
    for row in rows:
        if row["experiment"] != experiment:
            experiment = row["experiment"]
            if lines:
                lines.append("")
            lines.append(EXPERIMENT_LABELS.get(experiment, experiment))
            lines.append("  " + _cells(header, widths))
        true = ""
        if "true" in row:
            true = f"{_number(row['true'])} ({row['true_label']})"
        cells = (
            row["figure"],
            _number(row["published"]),
            _number(row["reproduced"]),
            _number(row["difference"]),
            row["verdict"],
            true,
        )
        lines.append("  " + _cells(cells, widths))
    return "\n".join(lines)


def _cells(cells, widths):
    return " ".join(f"{c:<{w}}" if w else c for c, w in zip(cells, widths)).rstrip()


def _number(value):
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return repr(value)
