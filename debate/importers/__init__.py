"""Importers: bring debates recorded elsewhere into the store (NYU 2023 human debates)."""

from debate.importers.nyu import ImportReport, import_nyu

__all__ = ["ImportReport", "import_nyu"]
