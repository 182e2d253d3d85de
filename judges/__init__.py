"""Judges: model judges, the human judging queue, scoring rules."""
