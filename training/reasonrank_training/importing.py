"""Import the paper's published data as this package's synth records (what ``filter`` reads).

Layouts, as found in the reference repository ``8421BCD/ReasonRank`` (commit ``06721fd``) and on
the hub's dataset cards and viewers (``huggingface.co/datasets/liuwenhan/...``):

- ``13k`` (``liuwenhan/reasonrank_data_13k``): ``training_data_all.jsonl``, one row a query window
  ``{dataset, qid, initial_list: [docid], final_list: [docid], reasoning, relevant_docids: [docid]}``
  (``README.md`` section 2 of the repository, and the dataset card). The query texts are in
  ``id_query/`` and the passages in ``id_doc/``, one JSON file a data set named after it
  (``id_doc/msmarco.json``), each one ``{id: text}`` object; ids are unique within a data set only,
  so a row's texts come from its ``dataset``'s files. Neither the repository nor the card states
  this: it is how a public conversion script of the 13k set reads them (``json.load`` of each
  ``id_doc/*.json``, keyed by the file name, then ``[dataset][docid]``), not checked on the real
  files here. Other forms are read too: ``{id: {title, text}}``, a JSON list or JSON lines of rows
  taking the id from the first of ``ID_KEYS`` and the text from the first of ``TEXT_KEYS``, or
  ``id<TAB>text`` lines; a data set with no file of its own is looked up in every file.
- ``sft`` (``liuwenhan/reasonrank_data_sft``): ``reasonrank_sft-data.json``, a JSON list in
  LLaMA-Factory's alpaca form; ``LLaMA-Factory/data/dataset_info.json`` maps it as
  ``{"prompt": "instruction", "response": "output", "system": "system"}``. ``instruction`` is the
  user message of the ReasonRank prompt (``utils.py``: ``add_prefix_prompt``/``add_post_prompt``
  for ``RANK_GPT_reasoning``, built as in ``rerank/rank_listwise_os_llm.py``: ``create_prompt``),
  ``output`` is ``<think>..</think> <answer>[..] > ..</answer>``. Rows carry no qid, docids or
  relevance labels (not in the column mapping; the card shows none). Not published but read too:
  LLaMA-Factory's chat form, ``messages`` (role/content) or ``conversations`` (from/value).
- ``rl`` (``liuwenhan/reasonrank_data_rl``): verl parquet, ``train.parquet`` and ``val.parquet``
  (the repository's ``README.md`` 3.3.2 c and ``verl/train_grpo.sh``), columns ``prompt`` (the
  system and user messages), ``label`` (the gold ranking ``[20] > [1] > ..``), ``initial_list``,
  ``final_list``, ``relevant_docids``, ``dataset``, ``data_source`` (``"ranking"``), ``ability``,
  ``reward_model: {ground_truth, style}`` and ``extra_info: {index, initial_list, final_list,
  relevant_docids, split}`` (hub viewer; ``verl/verl/utils/reward_score/__init__.py`` passes
  ``extra_info``'s lists and ``reward_model.ground_truth`` to ``reward_score/ranking.py``). No qid
  and no reasoning.

Query and passages of ``sft`` and ``rl`` rows are read back out of the rendered prompt (the core's
``render_messages`` is the same text), so they are the reference's rendered, truncated contents.

The published SFT and RL sets are taken to be disjoint halves of the 13k set (the hub lists 6.78k and
6.77k rows against 13.5k; no source states the split rule, and it was not checked on the real
data here). Rows carry no shared qid, so the split key
is the query as the prompt shows it (``split_key``); ``import --disjoint-from`` drops (or, with
``--overlap error``, refuses) rows whose key is in earlier imports, and reports how many.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from reasonrank_plugins.parse import split_output
from reasonrank_plugins.prompt import prepare_query

logger = logging.getLogger(__name__)

Format = Literal["13k", "sft", "rl"]
HUB_IDS: dict[str, str] = {
    "13k": "liuwenhan/reasonrank_data_13k",
    "sft": "liuwenhan/reasonrank_data_sft",
    "rl": "liuwenhan/reasonrank_data_rl",
}
ID_KEYS = ("id", "_id", "qid", "docid", "doc_id", "query_id", "pid")
TEXT_KEYS = ("text", "contents", "content", "query", "doc", "passage", "body")
TEACHER = "deepseek-r1 (published)"
_HEAD = re.compile(
    r"I will provide you with (\d+) passages, each indicated by a numerical identifier \[\]\. "
    r"Rank the passages based on their relevance to the search query: "
)
_TAIL = "\nRank the {num} passages above based on their relevance to the search query."


@dataclass
class ImportReport:
    format: str
    source: str
    rows: int = 0
    imported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    overlap_dropped: int = 0
    joined: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def split_key(query: str) -> str:
    """The query as the published prompts show it (``[n]`` -> ``(n)``), NFKC, case and spaces folded."""
    return " ".join(unicodedata.normalize("NFKC", prepare_query(query)).casefold().split())


def resolve(source: str | Path, fmt: Format) -> Path:
    """A local file or folder as is; otherwise a hub dataset id, downloaded with ``huggingface_hub``."""
    path = Path(source)
    if path.exists():
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        raise ValueError(f"{source!r} is neither a local path nor a hub dataset id like {HUB_IDS[fmt]!r}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), repo_type="dataset"))
    except Exception as exc:  # offline, gated, missing: say which and why
        raise ValueError(f"cannot download the dataset {source!r} from the hub: {exc}") from exc


def parse_prompt(user: str) -> tuple[str, list[str]]:
    """The query and passage contents of a rendered ReasonRank user message (inverse of
    ``render_messages``). ValueError when the text is not that prompt."""
    head = _HEAD.match(user)
    if not head:
        raise ValueError("not a ReasonRank prompt (its first sentence is missing)")
    num = int(head.group(1))
    tail = _TAIL.format(num=num)
    end = user.rfind(tail)
    marker = user.rfind("Search Query: ", 0, end)
    if end < 0 or marker < 0:
        raise ValueError("not a ReasonRank prompt (its closing instruction is missing)")
    query = user[marker + len("Search Query: ") : end - 1]  # up to the "." before the newline
    opening = f"{query}.\n\n"
    if not user.startswith(opening, head.end()):
        raise ValueError("the prompt's two copies of the query differ")
    body = user[head.end() + len(opening) : marker]
    contents, pos = [], 0
    for i in range(1, num + 1):
        label = f"[{i}] "
        if not body.startswith(label, pos):
            raise ValueError(f"passage [{i}] of {num} is missing from the prompt")
        nxt = body.find(f"\n[{i + 1}] ", pos) if i < num else len(body) - 1
        if nxt < 0:
            raise ValueError(f"passage [{i + 1}] of {num} is missing from the prompt")
        contents.append(body[pos + len(label) : nxt])
        pos = nxt + 1
    return query, contents


def _candidate(docid: str, content: str) -> dict[str, str]:
    """``Title: {t} Content: {x}`` back into title and text, so the core renders the same content."""
    if content.startswith("Title: ") and " Content: " in content:
        title, text = content[len("Title: ") :].split(" Content: ", 1)
        return {"docid": docid, "text": text, "title": title}
    return {"docid": docid, "text": content, "title": ""}


def _ranking(final_list: Any, initial_list: list[str]) -> str:
    """A docid list as ``[i] > [j]`` (1-based positions in ``initial_list``); strings pass as they are."""
    if isinstance(final_list, str):
        return final_list
    position = {d: i for i, d in enumerate(initial_list, start=1)}
    seen: list[int] = []
    for docid in final_list or []:
        i = position.get(str(docid))
        if i is not None and i not in seen:
            seen.append(i)
    return " > ".join(f"[{i}]" for i in seen)


def _record(fmt: str, qid: str, query: str, dataset: str, candidates: list[dict[str, str]], **extra: Any):
    n = len(candidates)
    return {
        "id": f"{qid}:0-{n}#0",
        "qid": qid,
        "query": query,
        "dataset": dataset,
        "window": [0, n],
        "candidates": candidates,
        "initial_list": [c["docid"] for c in candidates],
        "teacher": TEACHER,
        "published": fmt,
        **extra,
    }


def _qid(prefix: str, query: str) -> str:
    return f"{prefix}-{hashlib.sha1(split_key(query).encode()).hexdigest()[:12]}"


# ---- 13k --------------------------------------------------------------------------------------


def _store_rows(path: Path) -> Iterator[tuple[str, str, str]]:
    """(id, text, title) of one ``id_query``/``id_doc`` file (layout not published; see the module)."""
    if path.suffix == ".tsv":
        for line in path.read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                key, text = line.split("\t", 1)
                yield key, text, ""
        return
    if path.suffix == ".jsonl":
        rows: Any = [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(rows, dict):
        rows = [{"id": k, **(v if isinstance(v, dict) else {"text": v})} for k, v in rows.items()]
    for row in rows:
        key = next((row[k] for k in ID_KEYS if k in row), None)
        text = next((row[k] for k in TEXT_KEYS if k in row and isinstance(row[k], str)), None)
        if key is None or text is None:
            raise ValueError(
                f"{path}: a row without an id ({ID_KEYS}) or a text ({TEXT_KEYS}): {sorted(row)}"
            )
        yield str(key), text, row.get("title") or ""


class _Store:
    """The texts of ``id_query/`` or ``id_doc/``: one file a data set (``<dataset>.json``), ids unique
    within it. A row looks in its data set's file; a data set with no file of its own looks in all."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ValueError(
                f"the 13k layout needs {folder.name}/ next to training_data_all.jsonl ({folder})"
            )
        self.files: dict[str, dict[str, tuple[str, str]]] = {}
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".jsonl", ".json", ".tsv"):
                rows = self.files.setdefault(path.stem, {})
                rows.update((key, (text, title)) for key, text, title in _store_rows(path))

    @cached_property
    def anywhere(self) -> dict[str, tuple[str, str]]:
        """Every file's rows in one mapping (a later file wins), built only when a data set has no file."""
        return {key: value for rows in self.files.values() for key, value in rows.items()}

    def of(self, dataset: str) -> dict[str, tuple[str, str]]:
        return self.files[dataset] if dataset in self.files else self.anywhere


def read_13k(root: Path, report: ImportReport) -> Iterator[dict[str, Any]]:
    main = root if root.is_file() else next(iter(sorted(root.rglob("training_data_all.jsonl"))), root)
    if not main.is_file():
        raise ValueError(f"no training_data_all.jsonl in {root}")
    query_store, doc_store = _Store(main.parent / "id_query"), _Store(main.parent / "id_doc")
    with open(main, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            report.rows += 1
            qid, initial = str(row["qid"]), [str(d) for d in row["initial_list"]]
            dataset = row.get("dataset") or "reasonrank_13k"
            queries, docs = query_store.of(dataset), doc_store.of(dataset)
            if qid not in queries:
                report.skip("query text missing")
                continue
            if any(d not in docs for d in initial):
                report.skip("passage text missing")
                continue
            candidates = [{"docid": d, "text": docs[d][0], "title": docs[d][1]} for d in initial]
            yield _record(
                "13k", qid, queries[qid][0], dataset, candidates,
                relevant_docids=[str(d) for d in row.get("relevant_docids") or []],
                relevant_source="teacher", reasoning=row.get("reasoning") or "",
                final_list=_ranking(row.get("final_list"), initial),
            )  # fmt: skip


# ---- sft and rl: the rendered prompt ----------------------------------------------------------


def _files(root: Path, pattern: str) -> list[Path]:
    files = [root] if root.is_file() else sorted(root.rglob(pattern))
    if not files:
        raise ValueError(f"no {pattern} in {root}")
    return files


def _alpaca_or_chat(row: dict[str, Any]) -> tuple[str, str]:
    """(user message, reply) of an alpaca row (the published mapping) or, not published but
    LLaMA-Factory's other form, a ``messages``/``conversations`` row."""
    if "instruction" in row:
        return row["instruction"] + (row.get("input") or ""), row.get("output") or ""
    turns = row.get("messages") or row.get("conversations") or []
    by_role = {t.get("role", t.get("from")): t.get("content", t.get("value", "")) for t in turns}
    return by_role.get("user", by_role.get("human", "")), by_role.get("assistant", by_role.get("gpt", ""))


def read_sft(root: Path, report: ImportReport) -> Iterator[dict[str, Any]]:
    """LLaMA-Factory alpaca rows; docids are made up (``{qid}#{i}``), relevance is not published."""
    for path in _files(root, "*.json"):
        rows = json.loads(path.read_text(encoding="utf-8"))
        for row in rows if isinstance(rows, list) else []:
            report.rows += 1
            user, output = _alpaca_or_chat(row)
            try:
                query, contents = parse_prompt(user)
            except ValueError as exc:
                report.skip(f"prompt: {exc}")
                continue
            qid = str(row.get("qid") or _qid("sft", query))
            candidates = [_candidate(f"{qid}#{i}", c) for i, c in enumerate(contents, start=1)]
            reasoning, answer, _ = split_output(output)
            yield _record(
                "sft", qid, query, row.get("dataset") or "reasonrank_sft", candidates,
                relevant_docids=[], relevant_source="unpublished", reasoning=reasoning,
                final_list=answer or "",
            )  # fmt: skip


def read_rl(root: Path, report: ImportReport, split: str | None = None) -> Iterator[dict[str, Any]]:
    """verl parquet rows (``train.parquet``, ``val.parquet``); no reasoning is published."""
    import pyarrow.parquet as pq

    for path in _files(root, "*.parquet"):
        for row in pq.read_table(path).to_pylist():
            report.rows += 1
            extra = row.get("extra_info") or {}
            row_split = extra.get("split") or path.stem
            if split and row_split != split:
                report.skip(f"split {row_split}")
                continue
            user = next((m["content"] for m in row.get("prompt") or [] if m.get("role") == "user"), "")
            try:
                query, contents = parse_prompt(user)
            except ValueError as exc:
                report.skip(f"prompt: {exc}")
                continue
            initial = [str(d) for d in row.get("initial_list") or extra.get("initial_list") or []]
            if len(initial) != len(contents):
                report.skip("initial_list does not match the prompt's passages")
                continue
            gold = (row.get("reward_model") or {}).get("ground_truth") or row.get("label") or ""
            relevant = row.get("relevant_docids") or extra.get("relevant_docids") or []
            qid = str(row.get("qid") or _qid("rl", query))
            yield _record(
                "rl", qid, query, row.get("dataset") or "reasonrank_rl",
                [_candidate(d, c) for d, c in zip(initial, contents, strict=True)],
                relevant_docids=[str(d) for d in relevant], relevant_source="teacher", reasoning="",
                final_list=gold, split=row_split, index=extra.get("index"),
            )  # fmt: skip


# ---- the command ------------------------------------------------------------------------------


def _join(records: Iterable[dict[str, Any]], full: dict[str, dict[str, Any]], report: ImportReport):
    """Take qid, docids, dataset and (when missing) relevance from the 13k row of the same query."""
    for record in records:
        match = full.get(split_key(record["query"]))
        if not match or len(match["initial_list"]) != len(record["candidates"]):
            yield record
            continue
        if record["published"] == "sft":  # made-up docids: the 13k row's, in the same order
            record["candidates"] = [
                {**c, "docid": d} for c, d in zip(record["candidates"], match["initial_list"], strict=True)
            ]
            record["initial_list"] = list(match["initial_list"])
        elif record["initial_list"] != match["initial_list"]:  # a different window of the query
            yield record
            continue
        record.update(
            qid=match["qid"], dataset=match["dataset"], id=f"{match['qid']}:0-{len(match['initial_list'])}#0"
        )
        if not record["relevant_docids"]:
            record.update(relevant_docids=match["relevant_docids"], relevant_source="teacher (13k)")
        report.joined += 1
        yield record


def import_published(
    fmt: Format,
    source: str | Path,
    *,
    disjoint_from: Iterable[Iterable[dict[str, Any]]] = (),
    overlap: Literal["drop", "error"] = "drop",
    join_13k: str | Path | None = None,
    split: str | None = None,
) -> tuple[list[dict[str, Any]], ImportReport]:
    """Records of one published set, minus queries already in ``disjoint_from`` (record lists)."""
    if fmt not in HUB_IDS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(HUB_IDS)}")
    root = resolve(source, fmt)
    report = ImportReport(fmt, str(source))
    if fmt == "13k":
        rows: Iterable[dict[str, Any]] = read_13k(root, report)
    elif fmt == "sft":
        rows = read_sft(root, report)
    else:
        rows = read_rl(root, report, split)
    if join_13k is not None:
        full = {split_key(r["query"]): r for r in read_13k(resolve(join_13k, "13k"), ImportReport("13k", ""))}
        rows = _join(rows, full, report)
    taken = {split_key(r["query"]) for records in disjoint_from for r in records}
    kept = []
    for record in rows:
        if split_key(record["query"]) in taken:
            report.overlap_dropped += 1
            continue
        kept.append(record)
    if report.overlap_dropped and overlap == "error":
        raise ValueError(
            f"{report.overlap_dropped} {fmt} rows share a query with --disjoint-from; SFT and RL data must be disjoint"
        )
    report.imported = len(kept)
    logger.info("import %s: %d of %d rows (%s)", fmt, report.imported, report.rows, report.skipped)
    return kept, report
