"""Haystack ranker component for ReasonRank reasoning reranking."""

from haystack_integrations.components.rankers.reasonrank.ranker import ReasonRankRanker

__all__ = ["ReasonRankRanker"]
__version__ = "0.2.0"
