"""The 14 PLAsTiCC transient classes, in the order of the model's output vector.

One place defines the order so that training labels, model outputs and the
Spark column can never disagree (class 99, "unknown", is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransientClass:
    """A PLAsTiCC class: its integer code in the PLAsTiCC tables and its name."""

    code: int
    name: str


TRANSIENT_CLASSES: tuple[TransientClass, ...] = (
    TransientClass(6, "mu-Lens-Single"),
    TransientClass(15, "TDE"),
    TransientClass(16, "EB"),
    TransientClass(42, "SNII"),
    TransientClass(52, "SNIax"),
    TransientClass(53, "Mira"),
    TransientClass(62, "SNIbc"),
    TransientClass(64, "KN"),
    TransientClass(65, "M-dwarf"),
    TransientClass(67, "SNIa-91bg"),
    TransientClass(88, "AGN"),
    TransientClass(90, "SNIa"),
    TransientClass(92, "RRL"),
    TransientClass(95, "SLSN-I"),
)

#: Class names in model-output order (the public contract: ``fink_t2.CLASSES``).
CLASSES: list[str] = [c.name for c in TRANSIENT_CLASSES]

#: PLAsTiCC class codes in model-output order.
CLASS_CODES: list[int] = [c.code for c in TRANSIENT_CLASSES]

N_CLASSES: int = len(CLASSES)

_INDEX_BY_CODE = {c.code: i for i, c in enumerate(TRANSIENT_CLASSES)}


def class_index(code: int) -> int:
    """Position of a PLAsTiCC class code in the model output; KeyError if not modelled."""
    return _INDEX_BY_CODE[int(code)]


def class_indices(codes) -> "list[int]":
    """Vectorised :func:`class_index` for an iterable of codes."""
    return [class_index(c) for c in codes]
