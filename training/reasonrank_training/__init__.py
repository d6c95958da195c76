"""reasonrank-training: synthesise reasoning data, filter it, SFT and GRPO a ReasonRank student."""

from .reward import ranking_reward

__all__ = ["ranking_reward"]
__version__ = "0.2.0"
