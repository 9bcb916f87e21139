"""What DNAs are for: the paper's applications, built on DNAs and their distances."""


__all__: list[str] = []
