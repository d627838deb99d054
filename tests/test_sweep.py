"""Sweep assembly on a hand-made trace whose figures are worked out by hand.

Block size 4. Request 0: tokens 1-9 (full blocks A=1-4, B=5-8, one partial).
Request 1: tokens 1-13 (A, B, C=9-12, one partial). Request 2: tokens 20-27
(D, E). Distinct full blocks: A, B, C, D, E = 5.
"""

import numpy as np
import pytest

from prefix_sharing import sweep, token_store

pytestmark = pytest.mark.slow

PROMPTS = [list(range(1, 10)), list(range(1, 14)), list(range(20, 28))]


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokens")
    packed = token_store.pack(
        [np.array(p, dtype=np.uint32) for p in PROMPTS],
        [("a", 0), ("a", 1), ("b", 0)],
        {"tokenizer": {}, "trace": {}},
    )
    token_store.write_tokens(folder / "multi_turn.tokens", packed)
    return folder


def test_plan_has_each_point_once():
    points = sweep.plan(["multi_turn"], [4, 8], [12, None], [None], 4)
    assert [(p.block_size, p.capacity_tokens, p.caching) for p in points] == [
        (4, 12, True), (4, None, True), (8, None, True), (4, None, False)]


def test_unbounded_pool_follows_the_work(tokens_dir):
    trace = token_store.read_tokens(tokens_dir / "multi_turn.tokens")
    assert sweep.distinct_full_blocks(trace, 4) == 5
    # (5 distinct + 4 blocks of the largest request) / (1 - 0.01), rounded up, + 1
    assert sweep.gpu_blocks_for(sweep.Point("multi_turn", 4, None), trace, 0.01) == 11


def expected():
    return {
        # Unbounded, block 4: request 1 finds A and B; 2 hits of 2 + 3 + 2 look-ups.
        (4, None, True): dict(lookups=7, hits=2, evictions=0, not_admitted=0),
        # Block 8: one full block each (1-8, 1-8, 20-27); request 1 hits it.
        (8, None, True): dict(lookups=3, hits=1, evictions=0, not_admitted=0),
        # 12 tokens = 3 blocks, no watermark: request 1 needs 4 and is never
        # admitted; request 2 needs 2 new blocks, finds 1 free and evicts 1.
        (4, 12, True): dict(lookups=4, hits=0, evictions=1, not_admitted=1),
        (4, None, False): dict(lookups=0, hits=0, evictions=0, not_admitted=0),
    }


def check(figures):
    for f in figures:
        want = expected()[(f["block_size"], f["capacity_tokens"], f["caching"])]
        assert {k: f[k] for k in want} == want, f
    by_key = {(f["block_size"], f["capacity_tokens"], f["caching"]): f for f in figures}
    assert by_key[(4, None, True)]["token_hit_rate"] == 8 / 30
    assert by_key[(4, None, True)]["sharing_fraction_meaningful"]
    assert not by_key[(4, 12, True)]["sharing_fraction_meaningful"]


def points():
    return sweep.plan(["multi_turn"], [4, 8], [12, None], [None], 4)


def test_local_processes(tokens_dir):
    check(sweep.run_all(points(), tokens_dir, watermark=0.0, workers=2))


def test_local_ray_instance(tokens_dir):
    pytest.importorskip("ray")
    check(sweep.run_all(points(), tokens_dir, watermark=0.0, ray_address="local"))


def v1_expected():
    """The same points through V1, which keeps one block of each pool for itself.

    Unbounded pools get that block on top, so V1 sees what V0 sees. A capacity
    of 12 tokens is 3 blocks for both: V1 has 2 to give, so requests 0 and 1
    (3 and 4 blocks) are never admitted and request 2 fits without evicting.
    """
    return expected() | {
        (4, 12, True): dict(lookups=2, hits=0, evictions=0, not_admitted=2),
    }


def test_v1_sweep_and_comparison(tokens_dir, tmp_path):
    import csv
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT

    v1_python = ROOT / ".venv-v1" / "bin" / "python"
    if not v1_python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{v1_python} is missing")
        pytest.skip(f"{v1_python} is missing")
    env = dict(os.environ, PREFIX_SHARING_V1_PYTHON=str(v1_python))
    grid = ["--tokens", str(tokens_dir), "--traces", "multi_turn",
            "--base-block-size", "4", "--block-sizes", "4,8",
            "--capacities", "12,unbounded", "--block-size-capacities", "unbounded"]
    for manager, out in (("v0", "v0"), ("v1", "v1")):
        done = subprocess.run(
            [sys.executable, "-m", "prefix_sharing", "--quiet", "sweep", *grid,
             "--watermark", "0", "--manager", manager, "--workers", "1",
             "--out", str(tmp_path / out)],
            cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "v1" / "metrics.json").read_text())
    assert len(figures) == 4
    for f in figures.values():
        want = v1_expected()[(f["block_size"], f["capacity_tokens"], f["caching"])]
        assert {k: f[k] for k in want} == want, f
    # V1 wrote its points but drew nothing: its environment has no matplotlib.
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == [
        "metrics.json", "points.csv"]

    done = subprocess.run(
        [sys.executable, "-m", "prefix_sharing", "compare-sweep",
         "--v0", "v0", "--v1", "v1", "--base-block-size", "4", "--out", "both"],
        cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # The invoke task prints the table; the stage printing it too showed it twice.
    assert done.stdout == "" and "wrote the comparison to both" in done.stderr
    with open(tmp_path / "both" / "points.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    row = next(r for r in rows if r["capacity_tokens"] == "12")
    assert (row["v0_not_admitted"], row["v1_not_admitted"]) == ("1", "2")
    assert {p.name for p in (tmp_path / "both").iterdir()} == {
        "points.csv", "table.txt", "hit_rate_by_capacity.png",
        "hit_rate_by_block_size.png"}


def test_block_size_plot_without_a_block_size_sweep(tmp_path):
    import warnings

    from prefix_sharing import plots

    point = {"trace": "multi_turn", "caching": True, "block_size": 16,
             "capacity_tokens": None, "token_hit_rate": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.sweep_block_size([point, dict(point, capacity_tokens=64)], tmp_path)
    assert (tmp_path / "hit_rate_by_block_size.png").stat().st_size > 0
