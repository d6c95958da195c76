"""LangChain document compressor for ReasonRank reasoning reranking."""

from langchain_reasonrank.compressor import ReasonRankCompressor

__all__ = ["ReasonRankCompressor"]
