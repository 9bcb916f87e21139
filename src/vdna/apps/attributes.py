"""Ignoring chosen attributes: learned neuron weights (section 5.3, eq. 5-7 and appendix A.4 of the paper).

For each attribute ``a`` there are two DNAs, of images with and without it. Their unit-wise
distances (per neuron for ``dna-emd`` and ``dna-fd``, per layer for ``fd``) weighted by ``W`` give
``D_W``; the sensitivity deviation is ``Delta_a = 1 - D_W(a) / D_avg(a)`` (eq. 6). Weights are
learned with Adam to make the distance blind to a target attribute (``Delta_a -> 1``) while keeping
its sensitivity to the others (``|Delta_b| -> 0``), loss eq. 7, with early stopping on a validation
set of DNA pairs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write_bytes, json_object
from ..config import option
from ..distances import get_distance
from ..dna import VDNA
from ..io import load_vdna_from_files

Pairs = Mapping[str, tuple[VDNA, VDNA]]
"""``{attribute: (DNA of images with it, DNA of images without it)}``."""


def unit_distances(pairs: Pairs, metric: str = "emd") -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``{attribute: distance per unit}`` and the units per layer.

    ``metric``: a registered distance; its units are neurons (``"emd"`` between histogram DNAs,
    ``"nfd"`` between gaussian or layer-gaussian DNAs) or layers (``"fd"`` between layer-gaussian
    DNAs: one Fréchet distance per layer).
    """
    distance = get_distance(metric)
    if not pairs:
        raise ValueError("no attribute pairs given")
    distances, units = {}, None
    for attribute, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"attribute {attribute!r}: expected a (with, without) pair of DNAs")
        with_attribute, without = pair
        per_layer = distance.unit_values(with_attribute, without)
        per_unit = torch.cat(list(per_layer.values()))
        layer_units = {layer: len(values) for layer, values in per_layer.items()}
        if units is not None and layer_units != units:
            raise ValueError(f"attribute {attribute!r}: its DNAs have other layers than the first attribute's")
        units = layer_units
        distances[attribute] = per_unit.to(torch.float64).cpu()
    return distances, units


def sensitivity_deviations(weights: torch.Tensor, distances: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Eq. 6 for every attribute: ``1 - (W . d) / mean(d)``."""
    return {attribute: 1 - (weights * d).sum() / d.mean() for attribute, d in distances.items()}


def removal_loss(weights: torch.Tensor, distances: Mapping[str, torch.Tensor], target: str) -> torch.Tensor:
    """Eq. 7: ``|1 - Delta_target| + mean over the other attributes of |Delta_b|``."""
    deviations = sensitivity_deviations(weights, distances)
    others = [deviation.abs() for attribute, deviation in deviations.items() if attribute != target]
    loss = (1 - deviations[target]).abs()
    return loss + torch.stack(others).mean() if others else loss


@dataclass
class AttributeRemoval:
    """Weights learned to ignore ``target``, and how well they do on the validation pairs."""

    target: str
    metric: str
    weights: dict[str, torch.Tensor]
    """``{layer: weight per unit}``: pass to ``EMD``/``NFD`` (``weights=``), or ``FD`` for ``"fd"``."""
    target_removal: float
    """``Delta_a`` on the validation pairs (1: the distance no longer sees the target attribute)."""
    other_deviation: float
    """Mean ``|Delta_b|`` over the other attributes on the validation pairs (0: unchanged)."""
    iterations: int
    history: list[float] = field(default_factory=list, repr=False)
    """Validation loss after each iteration."""

    def weight_vector(self) -> torch.Tensor:
        """All weights, layers in order."""
        return torch.cat(list(self.weights.values()))


def _split_by_layer(vector: torch.Tensor, units: Mapping[str, int]) -> dict[str, torch.Tensor]:
    return dict(zip(units, vector.split(list(units.values()))))


def learn_attribute_removal(
    train: Pairs,
    validation: Pairs,
    target: str,
    metric: str = "emd",
    learning_rate: float = 1e-5,
    betas: tuple[float, float] = (0.9, 0.999),
    patience: int = 50,
    max_iterations: int = 100_000,
) -> AttributeRemoval:
    """Learn per-unit weights ``W`` that make the distance ignore ``target`` (eq. 5-7, defaults of A.4).

    ``train`` and ``validation`` map each attribute to its (with, without) DNA pair; both must name
    the same attributes, ``target`` among them. Adam optimises eq. 7 on ``train`` from
    ``W = 1 / units``, each step projected onto ``W >= 0`` (negative weights would make ``D_W`` no
    distance at all); training stops after ``patience`` iterations without a better validation
    loss, and the best weights on validation are returned.
    """
    if set(train) != set(validation):
        raise ValueError(f"train and validation must name the same attributes, got {sorted(train)} and {sorted(validation)}")
    if target not in train:
        raise ValueError(f"target attribute {target!r} is not among the attributes {sorted(train)}")
    if patience < 1 or max_iterations < 1:
        raise ValueError(f"patience and max_iterations must be positive, got {patience} and {max_iterations}")
    train_distances, units = unit_distances(train, metric)
    validation_distances, validation_units = unit_distances(validation, metric)
    if validation_units != units:
        raise ValueError("train and validation DNAs have different layers")
    for split, distances in (("train", train_distances), ("validation", validation_distances)):
        flat = [attribute for attribute, d in distances.items() if d.mean() <= 0]
        if flat:
            raise ValueError(f"{split}: attributes {flat} have zero distance between their DNAs; Delta is undefined")
    count = sum(units.values())
    weights = torch.full((count,), 1.0 / count, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([weights], lr=learning_rate, betas=betas)
    best_weights, best_loss, since_best, history = weights.detach().clone(), float("inf"), 0, []
    while len(history) < max_iterations:
        optimiser.zero_grad()
        removal_loss(weights, train_distances, target).backward()
        optimiser.step()
        with torch.no_grad():
            weights.clamp_(min=0)  # a weighted distance weighs its neurons: no weight below zero
        with torch.no_grad():
            loss = float(removal_loss(weights, validation_distances, target))
        history.append(loss)
        if loss < best_loss:
            best_weights, best_loss, since_best = weights.detach().clone(), loss, 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    deviations = sensitivity_deviations(best_weights, validation_distances)
    others = [abs(float(value)) for attribute, value in deviations.items() if attribute != target]
    return AttributeRemoval(
        target=target,
        metric=metric,
        weights=_split_by_layer(best_weights, units),
        target_removal=float(deviations[target]),
        other_deviation=sum(others) / len(others) if others else 0.0,
        iterations=len(history),
        history=history,
    )


def evaluate_removal(removal: AttributeRemoval, pairs: Pairs) -> tuple[float, float]:
    """``(Delta_target, mean |Delta_b|)`` of learned weights on other pairs (e.g. a test split)."""
    distances, units = unit_distances(pairs, removal.metric)
    if list(units) != list(removal.weights) or sum(units.values()) != len(removal.weight_vector()):
        raise ValueError("these DNAs have other layers or neurons than those the weights were learned on")
    if removal.target not in distances:
        raise ValueError(f"target attribute {removal.target!r} is not among the attributes {sorted(distances)}")
    deviations = sensitivity_deviations(removal.weight_vector(), distances)
    others = [abs(float(value)) for attribute, value in deviations.items() if attribute != removal.target]
    return float(deviations[removal.target]), (sum(others) / len(others) if others else 0.0)


@dataclass(frozen=True)
class LearnedRemoval:
    """One target's learned weights, with its scores on test pairs when given (``(Delta_target, mean |Delta_b|)``)."""

    removal: AttributeRemoval
    test: tuple[float, float] | None = None


def learn_removals(
    train: Pairs,
    validation: Pairs,
    targets: Sequence[str] | None = None,
    metric: str = "emd",
    learning_rate: float = 1e-5,
    patience: int = 50,
    max_iterations: int = 100_000,
    test: Pairs | None = None,
) -> dict[str, LearnedRemoval]:
    """:func:`learn_attribute_removal` for each of ``targets`` (default: every attribute, sorted), scored on ``test``."""
    learned = {}
    for target in targets or sorted(train):
        removal = learn_attribute_removal(train, validation, target, metric, learning_rate, patience=patience,
                                          max_iterations=max_iterations)
        learned[target] = LearnedRemoval(removal, evaluate_removal(removal, test) if test is not None else None)
    return learned


def save_removals(learned: Mapping[str, LearnedRemoval], path: str | os.PathLike, metric: str) -> None:
    """Write the learned weights and scores as the JSON :func:`load_neuron_weights` reads."""
    attributes = {}
    for target, item in learned.items():
        removal = item.removal
        entry: dict[str, Any] = {"validation": [removal.target_removal, removal.other_deviation], "iterations": removal.iterations}
        if item.test is not None:
            entry["test"] = list(item.test)
        entry["weights"] = {layer: values.tolist() for layer, values in removal.weights.items()}
        attributes[target] = entry
    atomic_write_bytes(Path(path), json.dumps({"metric": metric, "attributes": attributes}, indent=1).encode())


def load_neuron_weights(path: str | os.PathLike, metric: str, attribute: str | None = None) -> dict[str, list[float]]:
    """The weights ``{layer: weights}`` learned for ``attribute`` (the only one, by default) in a file of :func:`save_removals`."""
    try:
        document = json_object(Path(path).read_bytes(), path, "weights file")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    attributes = document.get("attributes")
    if not isinstance(attributes, dict) or not attributes:
        raise ValueError(f"{path} is not a weights file written by `vdna attributes -o`")
    if document.get("metric") != metric:
        raise ValueError(f"{path} holds weights learned for {document.get('metric')}, not for {metric}")
    if attribute is None:
        if len(attributes) > 1:
            raise ValueError(f"{path} holds weights for {', '.join(attributes)}; choose one with {option('attribute')}")
        attribute = next(iter(attributes))
    if attribute not in attributes:
        raise ValueError(f"{option('attribute')} {attribute!r} is not in {path}; it holds {', '.join(attributes)}")
    return attributes[attribute]["weights"]


def load_attribute_pairs(folder: str | os.PathLike) -> dict[str, tuple[VDNA, VDNA]]:
    """``{attribute: (with, without)}`` from a folder holding ``ATTRIBUTE/with.json`` and ``ATTRIBUTE/without.json`` DNAs."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of attribute DNAs")
    pairs = {}
    for attribute in sorted(path for path in root.iterdir() if path.is_dir()):
        files = {side: attribute / side for side in ("with", "without")}
        missing = [str(path) + ".json" for path in files.values() if not path.with_suffix(".json").is_file()]
        if missing:
            raise FileNotFoundError(f"attribute {attribute.name!r}: missing {', '.join(missing)}")
        pairs[attribute.name] = (load_vdna_from_files(files["with"]), load_vdna_from_files(files["without"]))
    if not pairs:
        raise ValueError(f"{folder} holds no attribute folders (ATTRIBUTE/with.json + ATTRIBUTE/without.json)")
    return pairs


__all__ = [
    "AttributeRemoval",
    "LearnedRemoval",
    "Pairs",
    "evaluate_removal",
    "learn_attribute_removal",
    "learn_removals",
    "load_attribute_pairs",
    "load_neuron_weights",
    "removal_loss",
    "save_removals",
    "sensitivity_deviations",
    "unit_distances",
]
