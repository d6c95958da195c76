"""LlamaIndex node postprocessor for ReasonRank reasoning reranking."""

from llama_index.postprocessor.reasonrank_rerank.base import ReasonRankRerank

__all__ = ["ReasonRankRerank"]
__version__ = "0.2.0"
