"""Core of the debate platform: protocols, quotes, agents, engine, store, analysis."""

__version__ = "0.1.0"
