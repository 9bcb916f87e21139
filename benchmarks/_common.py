"""What several benchmarks share: an extractor of the zoo as built here, with its real weights where they are here."""

from __future__ import annotations


def extractor_as_built(name: str) -> tuple[str, object, str]:
    """``(registered name, extractor, weights)``: ``name`` with its real weights, else random ones (the network's
    cost is the same), registered under a name of its own so that runs use this very extractor."""
    from vdna.extractors import create_extractor, register_extractor

    try:
        extractor = create_extractor(name, device="cpu")
        weights = extractor.info.weights_source
    except (FileNotFoundError, ValueError) as error:
        extractor = create_extractor(name, pretrained=False, device="cpu")
        weights = f"random (real weights not downloadable here: {str(error).split('(')[0].strip()})"
    built = f"{name}-as-built"
    register_extractor(built)(lambda pretrained=True, weights=None: extractor)
    return built, extractor, weights
