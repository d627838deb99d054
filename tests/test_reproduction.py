"""The full reproduction through vLLM's block manager, stage by stage."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

# True figures, counted from the allocator's look-ups (not published).
TRUE = {"multi_turn": (4987, 3207), "single_turn": (2091, 1)}


def cli(*args, cwd):
    command = [sys.executable, "-m", "prefix_sharing", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    work = tmp_path_factory.mktemp("reproduction")
    for kind in ("multi_turn", "single_turn"):
        assert cli("traces", "--kind", kind, "--out", f"traces/{kind}.jsonl",
                   cwd=work).returncode == 0
        assert cli("tokenize", "--trace", f"traces/{kind}.jsonl",
                   "--out", f"tokens/{kind}.tokens", cwd=work).returncode == 0
    (work / "published.json").write_text((ROOT / "results/published.json").read_text())
    replay = cli("replay", "--out", "results", cwd=work)
    assert replay.returncode == 0, replay.stderr
    return work


def test_every_published_figure_matches(reproduced):
    check = cli("check", "--published", "published.json", "--out", "check.json",
                cwd=reproduced)
    assert check.returncode == 0, check.stdout
    assert "check passed" in check.stdout
    rows = json.loads((reproduced / "check.json").read_text())["rows"]
    verdicts = {r["verdict"] for r in rows}
    assert verdicts == {"match", "not published"}
    assert sum(r["verdict"] == "match" for r in rows) == 2 * 11 + 3


@pytest.mark.parametrize("name", ["multi_turn", "single_turn"])
def test_true_figures(reproduced, name):
    totals = json.loads((reproduced / "results" / f"{name}.json").read_text())["totals"]
    lookups, hits = TRUE[name]
    assert (totals["lookups"], totals["hits"]) == (lookups, hits)
    assert totals["cached_prompt_tokens"] == hits * 16
    assert totals["true_reuse_fraction"] == hits / totals["blocks"]


def test_a_result_left_aside_is_not_a_pass(reproduced):
    # Multi-turn replayed with another block size: not comparable, so the
    # check must not claim that every published figure is reproduced.
    assert cli("replay", "--experiments", "multi_turn", "--block-size", "32",
               "--out", "other", cwd=reproduced).returncode == 0
    for name in ("single_turn", "multi_turn_no_caching"):
        for suffix in (".json", ".requests.json"):
            (reproduced / "other" / f"{name}{suffix}").write_text(
                (reproduced / "results" / f"{name}{suffix}").read_text())
    check = cli("check", "--results", "other", "--published", "published.json",
                "--experiments", "multi_turn,single_turn,multi_turn_no_caching",
                cwd=reproduced)
    assert check.returncode == 0
    assert "check not comparable: the results of multi_turn come" in check.stdout
    strict = cli("check", "--strict", "--results", "other", "--published",
                 "published.json", "--experiments",
                 "multi_turn,single_turn,multi_turn_no_caching", cwd=reproduced)
    assert strict.returncode == 3


def test_a_changed_figure_fails_the_check_by_name(reproduced, published):
    published["experiments"]["single_turn"]["figures"]["blocks"] += 1
    (reproduced / "wrong.json").write_text(json.dumps(published))
    check = cli("check", "--published", "wrong.json", cwd=reproduced)
    assert check.returncode == 1
    assert ("check FAILED: single_turn: blocks in block tables (published 2,183, "
            "reproduced 2,182)") in check.stdout
