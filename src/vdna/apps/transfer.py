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


def _without_diagonal(performance: Table, distances: Table) -> dict[str, dict[str, float]]:
    """``distances`` without each target's distance to itself, unless performance scores that pair too."""
    return {
        target: {source: value for source, value in row.items() if source != target or target in performance.get(target, {})}
        for target, row in distances.items()
    }


def _check_tables(performance: Table, distances: Table) -> None:
    if set(performance) != set(distances):
        raise ValueError(
            f"performance and distances must name the same targets, got {sorted(performance)} and {sorted(distances)}"
        )
    if not performance:
        raise ValueError("no targets given")
    for target in performance:
        if set(performance[target]) != set(distances[target]):
            raise ValueError(
                f"target {target!r}: performance and distances must name the same sources, "
                f"got {sorted(performance[target])} and {sorted(distances[target])}"
            )
        if not performance[target]:
            raise ValueError(f"target {target!r} has no sources")


def ranking_discrepancy(performance: Table, distances: Table) -> float:
    """Eq. 8: the mean over targets and ranks of ``|perf(source ranked i by performance) - perf(source ranked i by distance)|``.

    ``performance[target][source]``: observed performance of a model trained on ``source`` and
    evaluated on ``target`` (higher is better); ``distances[target][source]``: distance between
    the two datasets (lower is closer), e.g. :func:`distance_matrix` as it is returned (a target's
    distance to itself is left out unless ``performance`` scores that pair). 0 means the distances
    rank every source as performance does.
    """
    distances = _without_diagonal(performance, distances)
    _check_tables(performance, distances)
    total, count = 0.0, 0
    for target, observed in performance.items():
        by_performance: Sequence[str] = rank_sources(observed, higher_is_better=True)
        by_distance: Sequence[str] = rank_sources(distances[target], higher_is_better=False)
        for reference, predicted in zip(by_performance, by_distance):
            total += abs(observed[reference] - observed[predicted])
            count += 1
    return total / count
