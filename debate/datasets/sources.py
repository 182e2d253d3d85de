"""Registers every real data set's loader (imported lazily by `debate.datasets.loaders`)."""

from debate.datasets import arc, boolq, gpqa, mmlu, nyu_stories, planted, quality, truthfulqa

__all__ = ["arc", "boolq", "gpqa", "mmlu", "nyu_stories", "planted", "quality", "truthfulqa"]
