"""Stratified means, Wilson intervals and a vectorised cluster bootstrap.

Stratified mean: a group's value is the mean over its cells (e.g. the two answer orders,
or honest and deceptive consultants) of each cell's mean, so an unbalanced design does
not tilt the figure.

Cluster bootstrap: each replicate draws the clusters (source documents) with replacement
as a vector of counts (numpy multinomial); a statistic that is a ratio of sums is then a
matrix product of those counts with per-cluster sums (scipy.sparse), so 1,000 replicates
take a handful of matrix products, never a Python loop over rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))
CHUNK = 100  # replicates per matrix product


def wilson(p: np.ndarray | pd.Series, n: np.ndarray | pd.Series, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion p over n trials (vectorised)."""
    p = np.asarray(p, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z**2 / n
        center = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(center - half, 0, 1), np.clip(center + half, 0, 1)


def stratified_mean(frame: pd.DataFrame, keys: list[str], value: str, cells: list[str]) -> pd.DataFrame:
    """keys + [n, mean, raw_mean]: the mean averaged level by level over `cells`, and the plain mean.

    cells are ordered outer to inner: with ["consultant_side", "correct_first"] the cell means
    are averaged over the answer orders within each consultant side, then over the sides.
    """
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "n", "mean", "raw_mean"])
    per_cell = frame.groupby(keys + cells, dropna=False, observed=True)[value].agg(["sum", "count"])
    level = per_cell["sum"] / per_cell["count"]
    for depth in range(len(keys) + len(cells) - 1, len(keys) - 1, -1):
        level = level.groupby(level=list(range(depth)), dropna=False).mean()
    totals = per_cell.groupby(level=list(range(len(keys))), dropna=False)[["sum", "count"]].sum()
    out = pd.DataFrame({"n": totals["count"], "mean": level.reindex(totals.index),
                        "raw_mean": totals["sum"] / totals["count"]})
    out.index.names = keys
    return out.reset_index()


class ClusterBootstrap:
    """Replicates that resample clusters; the same replicates serve every statistic."""

    def __init__(self, clusters: pd.Series, replicates: int, seed: int = 0) -> None:
        labels = pd.Index(pd.unique(clusters.to_numpy()))
        self.codes = labels
        self.n_clusters = len(labels)
        self.replicates = replicates
        self.seed = seed

    def code(self, clusters: pd.Series) -> np.ndarray:
        return self.codes.get_indexer(clusters.to_numpy())

    def weights(self) -> Iterator[np.ndarray]:
        """Chunks of replicate-by-cluster draw counts; identical on every call."""
        rng = np.random.default_rng(self.seed)
        done = 0
        probs = np.full(self.n_clusters, 1.0 / max(self.n_clusters, 1))
        while done < self.replicates:
            size = min(CHUNK, self.replicates - done)
            yield rng.multinomial(self.n_clusters, probs, size=size).astype(np.float64)
            done += size

    def sums(self, cluster_codes: np.ndarray, columns: np.ndarray, values: np.ndarray,
             n_columns: int) -> Iterator[np.ndarray]:
        """Per replicate, the sum of `values` falling in each column (replicates x columns)."""
        matrix = sparse.csr_matrix(
            (values.astype(float), (cluster_codes, columns)), shape=(self.n_clusters, n_columns))
        matrix_t = matrix.T.tocsr()
        for w in self.weights():
            yield np.asarray(matrix_t @ w.T).T

    def stratified_means(self, frame: pd.DataFrame, keys: list[str], value: str,
                         cells: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The groups (keys) and a replicates x groups matrix of stratified means."""
        if frame.empty:
            return pd.DataFrame(columns=keys), np.zeros((self.replicates, 0))
        grouped = frame.groupby(keys + cells, dropna=False, observed=True, sort=True)
        cell = grouped.ngroup().to_numpy()
        cell_index = grouped.size().reset_index()[keys + cells]
        n_cells = len(cell_index)
        # One averaging step per cell level, inner first, as in stratified_mean.
        steps = []
        for depth in range(len(cells) - 1, -1, -1):
            parent = cell_index.groupby(keys + cells[:depth], dropna=False, sort=True).ngroup().to_numpy()
            step_from = steps[-1][1] if steps else np.arange(n_cells)
            units = pd.unique(step_from)
            to_parent = np.zeros(len(units), dtype=np.int64)
            to_parent[step_from] = parent  # every unit of the level below maps to one parent
            matrix = np.zeros((len(units), parent.max() + 1))
            matrix[np.arange(len(units)), to_parent] = 1.0
            steps.append((matrix, parent))
        groups = cell_index[keys].drop_duplicates().reset_index(drop=True)
        codes = self.code(frame["cluster"])
        vals = frame[value].to_numpy(dtype=float)
        out = []
        for num, den in zip(self.sums(codes, cell, vals, n_cells),
                            self.sums(codes, cell, np.ones_like(vals), n_cells)):
            with np.errstate(divide="ignore", invalid="ignore"):
                level = num / den
                for matrix, _ in steps:
                    valid = ~np.isnan(level)
                    level = (np.where(valid, level, 0.0) @ matrix) / (valid.astype(float) @ matrix)
            out.append(level)
        return groups, np.vstack(out)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2 * 100
    if replicates.size == 0:
        empty = np.zeros(replicates.shape[1] if replicates.ndim == 2 else 0)
        return empty, empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return low, high
