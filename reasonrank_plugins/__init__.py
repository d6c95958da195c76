"""reasonrank-plugins: reasoning listwise reranking (ReasonRank) for retrieval pipelines."""

from .parse import ParsedAnswer, ParseStatus, parse_answer
from .ranker import ReasonRanker
from .types import Passage, RankedPassage, RerankResult, WindowRecord

__all__ = [
    "ReasonRanker",
    "RerankResult",
    "RankedPassage",
    "Passage",
    "WindowRecord",
    "ParsedAnswer",
    "ParseStatus",
    "parse_answer",
]
__version__ = "0.2.0"
