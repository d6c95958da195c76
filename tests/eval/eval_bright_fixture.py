"""A tiny BRIGHT task in BRIGHT's own layout (records as in the hub's examples/ and documents/)."""

from __future__ import annotations

import json
from pathlib import Path

# Query "0" excludes d0 (a near copy of the question that BM25 ranks first); query "1" has no
# exclusions ("N/A", as in BRIGHT).
BRIGHT_EXAMPLES = [
    {
        "id": "0",
        "query": "Why do leaves of deciduous trees change colour in autumn?",
        "reasoning": "chlorophyll breaks down",
        "gold_ids": ["d1"],
        "gold_ids_long": ["long-d1"],
        "excluded_ids": ["d0"],
        "gold_answer": "Chlorophyll breaks down and carotenoids show.",
    },
    {
        "id": "1",
        "query": "How do bees find their way back to the hive?",
        "reasoning": "sun compass and landmarks",
        "gold_ids": ["d3", "d4"],
        "gold_ids_long": ["long-d3"],
        "excluded_ids": ["N/A"],
        "gold_answer": "Bees navigate by the sun and by landmarks.",
    },
]
BRIGHT_DOCUMENTS = [
    {
        "id": "d0",
        "content": "Why do leaves of deciduous trees change colour in autumn? Leaves change colour.",
    },
    {
        "id": "d1",
        "content": "In autumn trees stop making chlorophyll, so the leaves show yellow carotenoids.",
    },
    {"id": "d2", "content": "Deciduous forests cover large parts of Europe and trees grow slowly."},
    {"id": "d3", "content": "Honey bees use the sun as a compass to find the way back to the hive."},
    {"id": "d4", "content": "Bees learn landmarks around the hive during orientation flights."},
    {"id": "d5", "content": "Wasps build paper nests from chewed wood fibre."},
]
BRIGHT_LONG_DOCUMENTS = [
    {"id": "long-d1", "content": "A long page about chlorophyll, carotenoids and leaves in autumn."},
    {"id": "long-d3", "content": "A long page about how bees navigate with the sun."},
]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
