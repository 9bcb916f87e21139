"""Predicting transfer performance from dataset distances (section 5.5 and eq. 8 of the paper).

For each target (validation) set, source (training) sets are ranked by their distance to the
target, closest first; a good distance ranks them as their observed transfer performance does.
The ranking discrepancy ``d`` measures how far apart the two rankings are, in units of performance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import groupby

from ..dna import VDNA

Table = Mapping[str, Mapping[str, float]]
"""``{target name: {source name: value}}``."""

TIES = ("given", "expected")
"""The ways :func:`ranking_discrepancy` can order sources whose distances to a target are equal."""


def distance_matrix(dnas: Mapping[str, VDNA], distance: Callable[[VDNA, VDNA], object]) -> dict[str, dict[str, float]]:
    """``{target: {source: distance(source DNA, target DNA)}}`` between every pair of named DNAs."""
    return {
        target: {source: float(distance(dnas[source], dnas[target])) for source in dnas}
        for target in dnas
    }


def rank_sources(values: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """Source names, best first (ties keep the mapping's order)."""
    return sorted(values, key=lambda source: -values[source] if higher_is_better else values[source])


def scored_distances(performance: Table, distances: Table) -> dict[str, dict[str, float]]:
    """The distances of the pairs ``performance`` scores; ``ValueError`` naming any pair ``distances`` lacks.

    Each target's row keeps the order of ``distances[target]``, never that of ``performance[target]``,
    so that ranking it breaks ties in distance without knowing which source performs better.
    """
    if not performance:
        raise ValueError("no targets given")
    missing = sorted(set(performance) - set(distances))
    if missing:
        raise ValueError(f"distances have no row for the targets {missing}, which performance scores")
    scored = {}
    for target, row in performance.items():
        if not row:
            raise ValueError(f"target {target!r} has no sources")
        absent = sorted(set(row) - set(distances[target]))
        if absent:
            raise ValueError(f"target {target!r}: distances have no value for the sources {absent}, which performance scores")
        scored[target] = {source: value for source, value in distances[target].items() if source in row}
    return scored


def ranking_discrepancy(performance: Table, distances: Table, *, ties: str = "given") -> float:
    """Eq. 8: the mean over targets and ranks of ``|perf(source ranked i by performance) - perf(source ranked i by distance)|``.

    ``performance[target][source]``: observed performance of a model trained on ``source`` and
    evaluated on ``target`` (higher is better); ``distances[target][source]``: distance between
    the two datasets (lower is closer), e.g. :func:`distance_matrix` as it is returned: only the
    pairs ``performance`` scores are used (a target's distance to itself only if it scores that
    pair). 0 means the distances rank every source as performance does.

    Sources at equal distance from a target (e.g. distances rounded as published) are ordered
    without looking at their performance, which the ranking is meant to predict:

    - ``ties="given"`` (default): in the order of ``distances[target]``'s keys. With a target's
      sources listed in their published ranked order, this gives the published discrepancies
      (Tables 3 and 7-11 of the paper).
    - ``ties="expected"``: the mean of the discrepancy over every order of each group of equal
      distances. Computed exactly without enumerating the orders: a group holding ranks ``i..j``
      puts each of its sources at each of those ranks with probability ``1 / (j - i + 1)``, so the
      term of rank ``k`` is the mean over the group's sources ``s`` of ``|perf(ranked k) - perf(s)|``.
      Independent of the key order; equal to ``"given"`` when no distances tie.

    ``ValueError`` for any other ``ties``.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {list(TIES)}, not {ties!r}")
    distances = scored_distances(performance, distances)
    total, count = 0.0, 0
    for target, observed in performance.items():
        reference = [observed[source] for source in rank_sources(observed, higher_is_better=True)]
        row = distances[target]
        by_distance = rank_sources(row, higher_is_better=False)
        if ties == "given":
            candidates = [[observed[source]] for source in by_distance]
        else:  # each rank of a group of equal distances takes any of the group's performances, equally likely
            candidates = []
            for _, group in groupby(by_distance, key=row.__getitem__):
                scores = [observed[source] for source in group]
                candidates.extend([scores] * len(scores))
        for best, possible in zip(reference, candidates):
            total += sum(abs(best - score) for score in possible) / len(possible)
            count += 1
    return total / count


__all__ = [
    "TIES",
    "Table",
    "distance_matrix",
    "rank_sources",
    "ranking_discrepancy",
    "scored_distances",
]
