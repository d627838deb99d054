"""Where vLLM 0.6.6.post1's block manager (V0) and vLLM 0.33.0's (V1) differ.

Each case is a tiny hand-made trace whose figures are worked out by hand in
the comments, run through both managers. V0 runs here, in the replay
environment; V1 runs in its own environment (``.venv-v1``, built from
``requirements/compare.lock``) as one subprocess for every case at once, since
importing vLLM 0.33.0 takes most of half a minute.

Block size 4 throughout. Prompts are runs of distinct token ids, so equal
blocks come only from the prompts that are meant to share them. ``Pn`` is
block n of prompt P; V1's usable blocks are named b1, b2, ... in the order of
its free queue (block 0 is V1's null block).
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from prefix_sharing.vllm_v0_adapter import STUDY, V0BlockManager

pytestmark = pytest.mark.slow

V1_PYTHON = ROOT / ".venv-v1" / "bin" / "python"
BS = 4


def run(start, length):
    """``length`` token ids from ``start`` on."""
    return list(range(start, start + length))


P = run(100, 8)  # two full blocks, P1 P2
Q = run(200, 8)  # two full blocks, Q1 Q2
A = run(300, 5)  # A1 and a partly filled block
B = run(400, 9)  # B1 B2 and a partly filled block
C = run(500, 5)  # C1 and a partly filled block

# name: V0's pool, V1's pool and the prompts. V1 keeps block 0 for itself, so
# it gets one block more wherever the two should have the same room.
CASES = {
    "repeat_at_block_boundary": dict(v0_blocks=64, v1_blocks=65,
                                     prompts=[P, P, P + [999]]),
    "recompute_evicts_its_own_block": dict(v0_blocks=2, v1_blocks=3,
                                           prompts=[P, P, P]),
    "stale_copy_is_evicted": dict(v0_blocks=4, v1_blocks=5,
                                  prompts=[P, P, Q, P]),
    "eviction_order": dict(v0_blocks=4, v1_blocks=5, prompts=[A, B, C, B, A]),
    "admission": dict(v0_blocks=200, v1_blocks=200, prompts=[
        run(10_000, 198 * BS), run(20_000, 199 * BS), run(30_000, 200 * BS),
        run(40_000, 201 * BS)]),
    "no_caching": dict(v0_blocks=8, v1_blocks=9, caching=False, prompts=[P, P]),
}

V1_RUNNER = """
import dataclasses, json, sys
from prefix_sharing.vllm_v1_adapter import V1KVCacheManager

results = {}
for name, case in json.load(open(sys.argv[1])).items():
    manager = V1KVCacheManager(
        block_size=case["block_size"],
        gpu_blocks=case["v1_blocks"],
        caching=case.get("caching", True),
    )
    prefills = [dataclasses.asdict(manager.prefill(p)) for p in case["prompts"]]
    results[name] = {"prefills": prefills, "hit_rate": manager.hit_rate()}
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    """Every case through vLLM 0.33.0, in its own interpreter."""
    if not V1_PYTHON.exists():
        message = (
            f"{V1_PYTHON} is missing: build it with `python3 -m venv .venv-v1 && "
            ".venv-v1/bin/pip install --no-deps --require-hashes -r "
            "requirements/compare.lock && .venv-v1/bin/pip install --no-deps -e .`"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("v1")
    cases = {name: dict(case, block_size=BS) for name, case in CASES.items()}
    (work / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [str(V1_PYTHON), "-c", V1_RUNNER, "cases.json", "results.json"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "results.json").read_text())


def v0(name, watermark=0.0, procedure="scheduler"):
    case = CASES[name]
    manager = V0BlockManager(
        block_size=BS,
        gpu_blocks=case["v0_blocks"],
        cpu_blocks=0,
        watermark=watermark,
        caching=case.get("caching", True),
        procedure=procedure,
    )
    prefills = [dataclasses.asdict(manager.prefill(p)) for p in case["prompts"]]
    return {"prefills": prefills, "hit_rate": manager.hit_rate()}


def figures(result, *keys):
    """One tuple per prompt of the figures named."""
    return [tuple(p[k] for k in keys) for p in result["prefills"]]


FIGURES = ("blocks", "newly_cached", "lookups", "hits", "evictions")


def test_fully_cached_prompt_recomputes_its_last_block(v1):
    # P has 8 tokens, two full blocks, and comes three times, the last time
    # with one more token (9 tokens: P1 P2 and a partly filled block).
    # V0: 2 new blocks; then both found (2 look-ups, 2 hits); then both found
    #     again, the ninth token in a new block that is never cached.
    assert figures(v0("repeat_at_block_boundary"), *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 2, 0), (3, 0, 2, 2, 0)]
    # V1 serves at most len - 1 tokens from cache, whole blocks only:
    #     prompt 2 may take 7 tokens, so only P1 (4 tokens); P2 is computed
    #     again in a new block whose hash is already in the map (no growth).
    #     Prompt 3 may take 8 tokens: P1 and P2.
    result = v1["repeat_at_block_boundary"]
    assert figures(result, *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 1, 0), (3, 0, 2, 2, 0)]
    assert figures(result, "looked_up_tokens", "cached_tokens") == [
        (8, 0), (8, 4), (9, 8)]


def test_hit_rates_count_blocks_in_v0_and_tokens_in_v1(v1):
    # Same trace. V0: 4 hits in 2 + 2 + 2 full-block look-ups.
    assert v0("repeat_at_block_boundary")["hit_rate"] == pytest.approx(4 / 6)
    # V1: 0 + 4 + 8 tokens served of 8 + 8 + 9 prompt tokens.
    assert v1["repeat_at_block_boundary"]["hit_rate"] == 12 / 25


def test_recomputed_block_evicts_its_own_cached_copy(v1):
    # Room for exactly two blocks (V0: 2; V1: 3 less its null block).
    # V0: P1 P2 cached by prompt 1, then found whole: nothing allocated.
    assert figures(v0("recompute_evicts_its_own_block"), *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 2, 0), (2, 0, 2, 2, 0)]
    # V1: prompt 1 frees P2 then P1, so the free queue is [P2, P1]. Prompt 2
    #     takes P1 from cache (it leaves the queue) and needs one block for
    #     P2's tokens: the only free block is P2 itself, evicted and cached
    #     again (map 2 -> 1 -> 2, no growth). Prompt 3 does the same.
    assert figures(v1["recompute_evicts_its_own_block"], *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 1, 1), (2, 0, 2, 1, 1)]


def test_v1_evicts_the_stale_copy_of_a_recomputed_block(v1):
    # Room for four blocks. P, P, Q, P.
    # V0: P1 P2 new; P found whole; Q1 Q2 take the two free blocks; P found
    #     whole. Nothing is ever evicted.
    assert figures(v0("stale_copy_is_evicted"), *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 2, 0), (2, 2, 2, 0, 0), (2, 0, 2, 2, 0)]
    # V1, free queue [b1 b2 b3 b4]:
    # 1. P1=b1, P2=b2; freed tail first: [b3 b4 b2 b1].
    # 2. P1 found (b1 leaves the queue); P2 computed again in b3, a second
    #    copy under the same hash; freed: [b4 b2 b3 b1].
    # 3. Q takes b4 and b2: b2, the stale copy of P2, is evicted (1) though
    #    b3 still holds P2; the map keeps 2 hashes and gains Q1 Q2 (+2).
    #    Freed: [b3 b1 b2 b4].
    # 4. P1 found; P2 computed again in b3, which evicts V1's only copy of P2
    #    (1) and caches it again.
    assert figures(v1["stale_copy_is_evicted"], *FIGURES) == [
        (2, 2, 2, 0, 0), (2, 0, 2, 1, 0), (2, 2, 2, 0, 1), (2, 0, 2, 1, 1)]


def test_with_a_clock_both_evict_the_same_blocks(v1):
    # Room for four blocks. A (A1 + partial), B (B1 B2 + partial), C (C1 +
    # partial), B again, A again. Partly filled blocks are never cached.
    # V0, LRU on the request number, ties to the deepest block:
    # 1. A1 and a partial block: 2 of the 4 never-used blocks; 3 free after.
    # 2. B takes the 3 free blocks; cached now A1 (t1), B1 B2 (t2), 1 free.
    # 3. C1 takes the free block, its partial block evicts the LRU one: A1.
    #    The map of cached blocks gains C1 and loses A1: no growth.
    # 4. B1 B2 found; the partial block takes the block C's partial freed.
    # 5. A1 is gone (1 look-up, no hit); A1 takes the free block, the partial
    #    block evicts the LRU one: C1 (t3; B1 B2 were used at t4).
    expected = [(2, 1, 1, 0, 0), (3, 2, 2, 0, 0), (2, 0, 1, 0, 1),
                (3, 0, 2, 2, 0), (2, 0, 1, 0, 1)]
    assert figures(v0("eviction_order"), *FIGURES) == expected
    # V1, free queue [b1 b2 b3 b4]; a freed block that is not cached goes to
    # the head of the queue, a cached one to the tail, the tail block first:
    # 1. A1=b1, partial b2; freed: [b2 b3 b4 b1].
    # 2. B1=b2, B2=b3, partial b4; freed: [b4 b1 b3 b2].
    # 3. C1=b4, partial b1: A1 evicted; freed: [b1 b3 b2 b4].
    # 4. B1 B2 found (b2 b3 leave the queue), partial b1; freed: [b1 b4 b3 b2].
    # 5. A1 missing; A1=b1, partial b4: C1 evicted.
    assert figures(v1["eviction_order"], *FIGURES) == expected


def test_without_a_clock_v0_evicts_the_deepest_block(v1):
    # The study's procedure never gives V0 a time: every cached block has the
    # same access time, so V0 evicts the deepest block of all, B2 (8 tokens
    # deep), where V1 (and V0 with a clock) evicts A1, freed longest ago.
    # Prompt 4 (B) then finds only B1 in V0, both B blocks in V1.
    study = v0("eviction_order", procedure=STUDY)
    assert figures(study, "lookups", "hits", "evictions")[2:4] == [
        (1, 0, 1), (2, 1, 1)]
    assert figures(v1["eviction_order"], "lookups", "hits")[3] == (2, 2)


def test_admission_watermark_against_null_block(v1):
    # 200 blocks. V0 with the study's watermark (0.01) keeps int(0.01 * 200)
    # = 2 blocks free, so it admits a prompt of at most 198 blocks. V1 keeps
    # one block (its null block) and admits up to 199; 201 blocks exceed its
    # maximum prompt length (the pool's 800 tokens) and are refused first.
    admitted = [(True, "OK"), (False, "NEVER"), (False, "NEVER"), (False, "NEVER")]
    assert figures(v0("admission", watermark=0.01), "admitted", "status") == admitted
    assert figures(v1["admission"], "admitted", "status") == [
        (True, "OK"), (True, "OK"), (False, "NEVER"), (False, "NEVER")]
    assert figures(v1["admission"], "blocks")[:2] == [(198,), (199,)]


def test_without_caching_both_count_every_block_new(v1):
    # No look-ups, no hits, and every block is "newly cached" as in the study.
    expected = [(2, 2, 0, 0, 0), (2, 2, 0, 0, 0)]
    assert figures(v0("no_caching"), *FIGURES) == expected
    assert figures(v1["no_caching"], *FIGURES) == expected
    assert v0("no_caching")["hit_rate"] is None
    assert v1["no_caching"]["hit_rate"] is None


# --- the side-by-side replay on the published configuration ----------------


def cli(*args, cwd):
    command = [sys.executable, "-m", "prefix_sharing", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def replayed_v1(v1, tmp_path_factory):
    """The first 100 requests of each trace, replayed twice through V1."""
    work = tmp_path_factory.mktemp("replay_v1")
    for kind in ("multi_turn", "single_turn"):
        assert cli("traces", "--kind", kind, "--out", f"traces/{kind}.jsonl",
                   cwd=work).returncode == 0
        assert cli("tokenize", "--trace", f"traces/{kind}.jsonl",
                   "--out", f"tokens/{kind}.tokens", cwd=work).returncode == 0
    twice = (
        "from prefix_sharing.replay_v1 import main\n"
        "for out in ('first', 'second'):\n"
        "    assert main(['--quiet', '--tokens', 'tokens', '--out', out]) == 0\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([str(V1_PYTHON), "-c", twice], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return work


@pytest.mark.parametrize("name, lookups, hits, blocks, reused, tokens", [
    # V0's true figures on the published configuration (REFERENCE.md).
    ("multi_turn", 4987, 3207, 5080, 3300, 80_613),
    ("single_turn", 2091, 1, 2182, 92, 34_242),
])
def test_v1_matches_v0_on_the_published_configuration(
    replayed_v1, name, lookups, hits, blocks, reused, tokens
):
    # No prompt of the first 100 is fully cached at a block boundary and
    # nothing is evicted, so the two managers agree block for block.
    result = json.loads((replayed_v1 / "first" / f"{name}.json").read_text())
    totals = result["totals"]
    assert (totals["lookups"], totals["hits"]) == (lookups, hits)
    assert (totals["blocks"], totals["reused_blocks"]) == (blocks, reused)
    assert totals["prompt_tokens"] == tokens
    assert totals["cached_prompt_tokens"] == hits * 16
    # V1's own hit rate is the token hit rate.
    assert totals["vllm_hit_rate"] == hits * 16 / tokens
    assert totals["not_admitted"] == totals["evictions"] == 0
    assert result["config"]["block_manager"] == "vllm 0.33.0 KVCacheManager (V1)"


def test_v1_replay_is_byte_identical_on_rerun(replayed_v1):
    first = sorted(p.name for p in (replayed_v1 / "first").iterdir())
    assert first == sorted(p.name for p in (replayed_v1 / "second").iterdir())
    assert "multi_turn.requests.json" in first
    for name in first:
        assert (replayed_v1 / "first" / name).read_bytes() == (
            replayed_v1 / "second" / name
        ).read_bytes()


def test_v1_replay_refuses_the_wrong_environment(tmp_path):
    # Run with this (V0) environment's Python: one line, status 2.
    done = subprocess.run(
        [sys.executable, "-m", "prefix_sharing.replay_v1", "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "needs vLLM 0.33.0" in done.stderr
    assert not (tmp_path / "out").exists()


def test_v1_replay_names_a_missing_token_file(v1, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [str(V1_PYTHON), "-m", "prefix_sharing.replay_v1", "--tokens", "none"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "none/multi_turn.tokens: not a tokenized trace" in done.stderr
