"""Comparing two image sets, each given as images or as a saved DNA: the distance, and how sure it is.

:func:`compare` is what ``vdna compare`` runs: it makes (in one pass per set) or loads the DNAs a
registered distance needs, gives the distance, and with ``stats=True`` its interval, noise
floor and p-value from per-image DNAs (:func:`vdna.stats.compare_sets`); with ``by_layer=True``
each layer's part. The :class:`Comparison` it returns reads as text and as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import RayConfig, RunConfig, StatsConfig, option, run_settings
from .distances import Distance, NeuronWeights, get_distance
from .dna import VDNA
from .inputs import as_distribution, dnas_of, saved_dna
from .processor import VDNAProcessor
from .stats import LayerShare, SetComparison, check_memory, compare_sets, layer_shares, layer_table
from .stats import statistics as statistic_rows


@dataclass(frozen=True)
class Comparison:
    """Two sets compared by ``metric``: its ``value``, the DNAs compared, and what was asked besides.

    ``a`` and ``b``: the DNAs of each set that were compared (per-image DNAs with statistics);
    ``layer``: the only layer compared, or None for all; ``stats``: the interval, noise floor and
    p-value (:class:`~vdna.stats.SetComparison`) when asked; ``layers``: each layer's part when asked.
    """

    metric: str
    value: float
    a: VDNA
    b: VDNA
    layer: str | None = None
    weighted: bool = False
    stats: SetComparison | None = None
    layers: Mapping[str, LayerShare] | None = None

    def unit_values(self) -> dict[str, torch.Tensor]:
        """``{layer: distance per unit}`` (neurons, or one per layer) between the two sets' DNAs."""
        distance = get_distance(self.metric)
        first, second = distance.set_dna(self.a, "first set"), distance.set_dna(self.b, "second set")
        return distance.unit_values(first, second, neurons=None if self.layer is None else {self.layer: None})

    def scope(self) -> str:
        """What was compared, in words."""
        scope = f"layer {self.layer}" if self.layer else f"all {len(self.a.neurons_list)} layers"
        return scope + (", weighted" if self.weighted else "")

    def lines(self) -> list[str]:
        """The comparison as text: the value, then the statistics and the layers when asked."""
        lines = [f"{self.metric}: {self.value:.6f}  ({self.a.feature_extractor_name}, {self.a.name}, {self.scope()}; "
                 f"A: {self.a.num_images} images, B: {self.b.num_images} images)"]
        if self.stats is not None:
            lines += [f"  {row.name} {row.cell.text()}  ({row.note})" for row in statistic_rows(self.stats)]
            lines.append(f"  {self.stats.reading()}")
        if self.layers is not None:
            lines += layer_table(self.layers).splitlines()
        return lines

    def to_dict(self, sources: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
        """Plain JSON-ready values; ``sources`` name the two sets."""
        document = {"metric": self.metric, "value": self.value, "scope": self.layer or "all", "weighted": self.weighted,
                    "a": _summary(self.a, sources[0]), "b": _summary(self.b, sources[1])}
        if self.stats is not None:
            document["stats"] = {key: item for key, item in self.stats.to_dict().items() if key not in ("metric", "value", "layers")}
        if self.layers is not None:
            document["layers"] = {layer: part.to_dict() for layer, part in self.layers.items()}
        return document


def _summary(vdna: VDNA, source: str) -> dict[str, Any]:
    return {"source": source, "distribution": vdna.name, "num_images": vdna.num_images,
            "feature_extractor": vdna.feature_extractor_name}


def compare(a: Any, b: Any, metric: str = "emd", **settings: Any) -> Comparison:
    """The distance ``metric`` between the sets ``a`` and ``b`` (saved DNAs, DNAs, or sources of images).

    ``settings``: those of :func:`compare_metrics`. From images, each set's DNAs are made in one
    pass with the settings ``config`` and ``options`` (:class:`~vdna.RunConfig`'s fields): the
    metric's distribution (``bins`` for histograms), or ``distribution``; with ``stats``, its
    per-image DNAs, resampled by :func:`~vdna.stats.compare_sets` with ``stats_config``'s
    resamples and permutations and the run's seed. ``layer`` compares that layer only;
    ``neuron_weights`` weight the compared units. ``by_layer`` adds each layer's value and share
    (with its statistics when asked).
    """
    return compare_metrics(a, b, [metric], **settings)[0]


def compare_metrics(
    a: Any,
    b: Any,
    metrics: Sequence[str],
    *,
    layer: str | None = None,
    neuron_weights: NeuronWeights | None = None,
    stats: bool = False,
    by_layer: bool = False,
    distribution: str | None = None,
    bins: int = 1000,
    config: RunConfig | None = None,
    stats_config: StatsConfig | None = None,
    processor: VDNAProcessor | None = None,
    ray: RayConfig | None = None,
    **options: Any,
) -> list[Comparison]:
    """:func:`compare` by each of ``metrics``, in that order, from one pass through the network per set of images.

    Each set's DNAs of every distribution the metrics need are made together (on Ray, one run per
    distribution); a saved DNA serves every metric it gives the DNAs of. ``distribution`` replaces
    the distribution of a single metric only.
    """
    distances = [get_distance(metric) for metric in metrics]
    if not distances:
        raise ValueError("give at least one metric")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics are named twice: {', '.join(metrics)}")
    if distribution is not None and len(distances) > 1:
        raise ValueError(f"{option('distribution_name')} sets the DNAs of one metric; with several metrics each makes its own")
    config, ranges = run_settings(config, "compare", **options)
    neurons = None if layer is None else {layer: None}
    stats_config, processor = stats_config or StatsConfig(), processor or VDNAProcessor()
    if stats:
        check_memory(0, 1, stats_config.resamples, stats_config.permutations)  # before any image goes through the network
    kinds = []
    for distance in distances:
        kind = distance.per_image_distribution(bins) if stats else distance.distribution(bins)
        if stats and distribution is not None and parse_type(distribution) != parse_type(kind):
            raise ValueError(f"{option('stats')} resamples per-image DNAs: with {option('metric')} {distance.name} give "
                             f"{option('distribution_name')} {distance.per_image_distribution('B')} or none, not {distribution}")
        kinds.append(distribution or kind)
    wanted = list(dict.fromkeys(kinds))
    sets: list[dict[str, VDNA]] = [{}, {}]
    saved = [saved_dna(argument) for argument in (a, b)]
    for dnas, given, argument in zip(sets, saved, (a, b)):  # saved DNAs are checked before images go through the network
        if given is not None:
            dnas.update({kind: as_distribution(given, kind, str(argument)) for kind in wanted})
    for dnas, given, argument, name in zip(sets, saved, (a, b), ("A", "B")):
        if given is None:
            passes = [wanted] if ray is None else [[kind] for kind in wanted]  # a run on Ray makes one DNA
            made = [dna for kinds_of_pass in passes for dna in dnas_of(
                argument, kinds_of_pass, config, processor, ray=ray, ranges=ranges, name=name)]
            dnas.update(zip(wanted, made))
    return [_compared(distance, sets[0][kind], sets[1][kind], layer, neurons, neuron_weights, stats, by_layer,
                      stats_config, config.seed) for distance, kind in zip(distances, kinds)]


def _compared(distance: Distance, first: VDNA, second: VDNA, layer: str | None, neurons: Any,
              neuron_weights: NeuronWeights | None, stats: bool, by_layer: bool, stats_config: StatsConfig,
              seed: int) -> Comparison:
    weighted = neuron_weights is not None
    if stats:
        result = compare_sets(first, second, distance.name, resamples=stats_config.resamples,
                              permutations=stats_config.permutations, seed=seed, neurons=neurons, neuron_weights=neuron_weights)
        return Comparison(distance.name, result.value, first, second, layer, weighted, result, result.layers if by_layer else None)
    first_set, second_set = distance.set_dna(first, "first set"), distance.set_dna(second, "second set")
    value = float(distance.compare(first_set, second_set, neurons=neurons, neuron_weights=neuron_weights))
    layers = layer_shares(first_set, second_set, distance.name, neurons=neurons, neuron_weights=neuron_weights) if by_layer else None
    return Comparison(distance.name, value, first, second, layer, weighted, None, layers)


def parse_type(distribution: str) -> str:
    """The DNA type a distribution name makes."""
    from .distributions import parse_distribution

    return parse_distribution(distribution)[0].type


__all__ = ["Comparison", "compare", "compare_metrics"]
