"""LlamaIndex node postprocessor for ReasonRank reasoning reranking."""

from llama_index.postprocessor.reasonrank.base import ReasonRankRerank

__all__ = ["ReasonRankRerank"]
