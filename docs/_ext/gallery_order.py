"""The order of the examples in the docs' gallery: the tutorial path, from a first run to a comparison."""

from __future__ import annotations

ORDER = ["quickstart.py", "inspect_circuit.py", "compare_rules.py"]


class TutorialOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``: the files of :data:`ORDER` first, in that
    order, then any other example by name."""

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)
