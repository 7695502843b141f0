"""The 14 PLAsTiCC transient classes, in the order of the model's output vector.

One place defines the order so that training labels, model outputs and the
Spark column can never disagree (class 99, "unknown", is not modelled), and
the one place that maps each class name to its field in the ``t2`` column:
four names (``mu-Lens-Single``, ``M-dwarf``, ``SNIa-91bg``, ``SLSN-I``) are
not legal Avro names, and Fink distributes its alerts as Avro and stores them
in HBase, so the column uses Avro-legal field names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TransientClass:
    """A PLAsTiCC class: its integer code in the PLAsTiCC tables, its name, its ``t2`` column field."""

    code: int
    name: str
    field: str  # Avro-legal name of its probability in the t2 struct

    def __post_init__(self) -> None:
        if not AVRO_NAME.fullmatch(self.field):
            raise ValueError(f"t2 field {self.field!r} of class {self.name!r} is not a legal Avro name")


#: What Avro (hence Fink's Kafka distribution and its schema registry) accepts as a field name.
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TRANSIENT_CLASSES: tuple[TransientClass, ...] = (
    TransientClass(6, "mu-Lens-Single", "mu_Lens_Single"),
    TransientClass(15, "TDE", "TDE"),
    TransientClass(16, "EB", "EB"),
    TransientClass(42, "SNII", "SNII"),
    TransientClass(52, "SNIax", "SNIax"),
    TransientClass(53, "Mira", "Mira"),
    TransientClass(62, "SNIbc", "SNIbc"),
    TransientClass(64, "KN", "KN"),
    TransientClass(65, "M-dwarf", "M_dwarf"),
    TransientClass(67, "SNIa-91bg", "SNIa_91bg"),
    TransientClass(88, "AGN", "AGN"),
    TransientClass(90, "SNIa", "SNIa"),
    TransientClass(92, "RRL", "RRL"),
    TransientClass(95, "SLSN-I", "SLSN_I"),
)

#: Class names in model-output order (the public contract: ``fink_t2.CLASSES``).
CLASSES: list[str] = [c.name for c in TRANSIENT_CLASSES]

#: Field of each class's probability in the ``t2`` column, in model-output order (Avro-legal names).
CLASS_FIELDS: list[str] = [c.field for c in TRANSIENT_CLASSES]

#: Class name -> its field in the ``t2`` column (``"SNIa-91bg"`` -> ``"SNIa_91bg"``).
FIELD_OF_CLASS: dict[str, str] = {c.name: c.field for c in TRANSIENT_CLASSES}

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
