"""Predicting transfer performance from dataset distances (section 5.5 and eq. 8 of the paper).

For each target (validation) set, source (training) sets are ranked by their distance to the
target, closest first; a good distance ranks them as their observed transfer performance does.
The ranking discrepancy ``d`` measures how far apart the two rankings are, in units of performance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..dna import VDNA

Table = Mapping[str, Mapping[str, float]]
"""``{target name: {source name: value}}``."""


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
    """The distances of the pairs ``performance`` scores; ``ValueError`` naming any pair ``distances`` lacks."""
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
        scored[target] = {source: distances[target][source] for source in row}
    return scored


def ranking_discrepancy(performance: Table, distances: Table) -> float:
    """Eq. 8: the mean over targets and ranks of ``|perf(source ranked i by performance) - perf(source ranked i by distance)|``.

    ``performance[target][source]``: observed performance of a model trained on ``source`` and
    evaluated on ``target`` (higher is better); ``distances[target][source]``: distance between
    the two datasets (lower is closer), e.g. :func:`distance_matrix` as it is returned: only the
    pairs ``performance`` scores are used (a target's distance to itself only if it scores that
    pair). 0 means the distances rank every source as performance does.
    """
    distances = scored_distances(performance, distances)
    total, count = 0.0, 0
    for target, observed in performance.items():
        by_performance: Sequence[str] = rank_sources(observed, higher_is_better=True)
        by_distance: Sequence[str] = rank_sources(distances[target], higher_is_better=False)
        for reference, predicted in zip(by_performance, by_distance):
            total += abs(observed[reference] - observed[predicted])
            count += 1
    return total / count
