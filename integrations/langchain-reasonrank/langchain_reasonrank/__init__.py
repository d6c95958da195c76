"""LangChain document compressor for ReasonRank reasoning reranking."""

from langchain_reasonrank.compressor import ReasonRankCompressor

__all__ = ["ReasonRankCompressor"]
__version__ = "0.2.0"
