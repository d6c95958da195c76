"""LlamaIndex node postprocessor for ReasonRank reasoning reranking."""

from llama_index.postprocessor.reasonrank_rerank.base import ReasonRankRerank

__all__ = ["ReasonRankRerank"]
