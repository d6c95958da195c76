"""``reasonrank batch`` on a scripted engine: single process (the reference, via the CLI) and on
local Ray Data with 2 actors, then resumed after deleting half of the output."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonrank_plugins.batch import done_qids, load_items, run_batch
from reasonrank_plugins.batch.pipeline import iter_records
from reasonrank_plugins.cli import app
from reasonrank_plugins.options import RankerOptions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

DL19 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dl19"
QUERIES, DEPTH = 50, 12


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Queries q00..q49: DL19's 43 queries, then 7 of them again reworded; each keeps the BM25
    top-12 of its DL19 query, shifted so that repeated queries rank a different list."""
    base = [json.loads(line) for line in (DL19 / "queries.jsonl").read_text().splitlines()]
    run: dict[str, list[str]] = defaultdict(list)
    for line in (DL19 / "run.bm25.trec").read_text().splitlines():
        qid, _, docid, *_ = line.split()
        run[qid].append(docid)
    root = tmp_path_factory.mktemp("beir50")
    queries, run_lines, wanted = [], [], set()
    for n in range(QUERIES):
        source = base[n % len(base)]
        text = source["text"] if n < len(base) else f"tell me: {source['text']}"
        offset = 0 if n < len(base) else 5
        docids = run[source["_id"]][offset : offset + DEPTH]
        queries.append({"_id": f"q{n:02d}", "text": text})
        run_lines += [f"q{n:02d} Q0 {d} {r} {100 - r} bm25" for r, d in enumerate(docids, start=1)]
        wanted.update(docids)
    with (DL19 / "corpus.jsonl").open() as f:
        corpus = [line for line in f if json.loads(line)["_id"] in wanted]
    (root / "corpus.jsonl").write_text("".join(corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "run.bm25.trec").write_text("\n".join(run_lines) + "\n")
    return root


SPEC = RankerOptions(
    backend="scripted",
    window_size=5,
    step=2,
    max_passage_tokens=64,
    backend_options={"latency": 0.02, "max_batch": 8},
)
CLI_SPEC = [
    "--backend",
    "scripted",
    "--window",
    "5",
    "--step",
    "2",
    "--max-passage-tokens",
    "64",
    "--latency",
    "0.02",
    "--max-batch",
    "8",
    "--depth",
    str(DEPTH),
    "--batch-size",
    "5",
]


def records_by_qid(out: Path) -> dict[str, dict]:
    return {r["qid"]: r for r in iter_records(out)}


@pytest.fixture(scope="module")
def reference(beir_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single")
    result = CliRunner().invoke(app, ["batch", "--data", str(beir_dir), "--out", str(out), *CLI_SPEC])
    assert result.exit_code == 0, result.output
    assert f"{QUERIES} queries: 0 already done, {QUERIES} reranked" in result.output
    return out


def test_single_process_output_is_complete(reference: Path, beir_dir: Path):
    items = {it.qid: it for it in load_items(beir_dir, beir_dir / "run.bm25.trec", DEPTH)}
    records = records_by_qid(reference)
    assert sorted(records) == [f"q{n:02d}" for n in range(QUERIES)]
    for qid, r in records.items():
        assert sorted(r["docids"]) == sorted(items[qid].docids) and len(r["docids"]) == DEPTH
        assert r["windows"] == 5 and r["statuses"] == {"ok": 5}  # 12 candidates, window 5, step 2
        assert r["strategy"] == "sliding" and r["depth"] == 5
    lines = (reference / "run.trec").read_text().splitlines()
    assert len(lines) == QUERIES * DEPTH
    assert [line.split()[0] for line in lines[::DEPTH]] == [f"q{n:02d}" for n in range(QUERIES)]
    # the scripted engine reorders by query-word overlap, so the BM25 order is not kept everywhere
    assert sum(r["docids"] != items[qid].docids for qid, r in records.items()) > QUERIES // 2
    rerun = CliRunner().invoke(app, ["batch", "--data", str(beir_dir), "--out", str(reference), *CLI_SPEC])
    assert f"{QUERIES} queries: {QUERIES} already done, 0 reranked" in rerun.output


def test_tdpart_passes_through_and_records_strategy_and_depth(beir_dir: Path, tmp_path: Path):
    """The reverse script, window 5, cutoff 2 over 12 candidates: the pivot window ranks 4 3 2 1 0
    (pivot 3); the partitions (3, 5..8) and (3, 9..11) put all 7 above it, over the budget of 5, so
    the final window gets 4, the windows' bests 8 11 and then 7, and the pivot: 3 11 7 8 4; then the
    rest of the partitions (10 6 9 5) and what lost to the pivot in prior order (0 1 2)."""
    out = tmp_path / "tdpart"
    args = ["batch", "--data", str(beir_dir), "--out", str(out), *CLI_SPEC, "--model", "reverse"]
    result = CliRunner().invoke(app, [*args, "--strategy", "tdpart", "--cutoff", "2"])
    assert result.exit_code == 0, result.output
    items = {it.qid: it for it in load_items(beir_dir, beir_dir / "run.bm25.trec", DEPTH)}
    records = records_by_qid(out)
    assert len(records) == QUERIES
    for qid, r in records.items():
        assert (r["strategy"], r["depth"], r["windows"], r["statuses"]) == ("tdpart", 3, 4, {"ok": 4})
        assert r["docids"] == [items[qid].docids[i] for i in (3, 11, 7, 8, 4, 10, 6, 9, 5, 0, 1, 2)]


def test_a_rerun_into_a_new_folder_is_answered_from_the_cache_dir(beir_dir: Path, reference: Path, tmp_path: Path):
    pytest.importorskip("diskcache")
    log = tmp_path / "windows.log"  # the scripted model writes a line a window
    args = [*CLI_SPEC, "--cache-dir", str(tmp_path / "cache"), "--option", f"log={log}"]
    for n in (1, 2):
        result = CliRunner().invoke(app, ["batch", "--data", str(beir_dir), "--out", str(tmp_path / f"run{n}"), *args])
        assert result.exit_code == 0, result.output
        assert f"{QUERIES} queries: 0 already done, {QUERIES} reranked" in result.output
        assert len(log.read_text().splitlines()) == QUERIES * 5  # the second run made no model call
        assert (tmp_path / f"run{n}" / "run.trec").read_bytes() == (reference / "run.trec").read_bytes()


@pytest.mark.timeout(600)
def test_ray_matches_single_process_and_resumes_half(
    local_ray, reference: Path, beir_dir: Path, tmp_path: Path
):
    items = load_items(beir_dir, beir_dir / "run.bm25.trec", DEPTH)
    out = tmp_path / "ray"
    summary = run_batch(items, SPEC, out, batch_size=5, use_ray=True, num_replicas=2)
    assert sorted(summary.computed) == sorted(it.qid for it in items) and summary.skipped == 0
    assert summary.workers == 2  # the actor pool's two actors both reranked
    assert (out / "run.trec").read_bytes() == (reference / "run.trec").read_bytes()
    assert records_by_qid(out) == records_by_qid(reference)

    parts = sorted((out / "parts").glob("part-*.jsonl"))
    deleted: set[str] = set()
    for path in parts:
        if len(deleted) >= QUERIES // 2:
            break
        deleted |= {json.loads(line)["qid"] for line in path.read_text().splitlines()}
        path.unlink()
    kept = {p: p.read_bytes() for p in parts if p.exists()}
    assert 0 < len(deleted) < QUERIES and done_qids(out) == {it.qid for it in items} - deleted

    again = run_batch(items, SPEC, out, batch_size=5, use_ray=True, num_replicas=2)
    assert sorted(again.computed) == sorted(deleted)  # only the deleted half was recomputed
    assert again.skipped == QUERIES - len(deleted)
    assert all(p.read_bytes() == data for p, data in kept.items())  # the kept half was not rewritten
    assert (out / "run.trec").read_bytes() == (reference / "run.trec").read_bytes()
    assert records_by_qid(out) == records_by_qid(reference)
