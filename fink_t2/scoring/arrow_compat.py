"""pyarrow across Fink's images: the 9.0 API of the ZTF image, and its CVE-2023-47248 closed.

Fink's ZTF image pins pyarrow 9.0.0, which must stay (installing fink-t2 never
upgrades an image's packages). Two things follow: struct fields are read by name
with an API that 9.0 has (``pc.struct_field`` took only indices then), and files
are read only after ``pyarrow_hotfix`` has refused the unpickling of
``arrow.py_extension_type`` metadata, which pyarrow < 14.0.1 does on read
(arbitrary code from a crafted parquet or IPC file). Newer pyarrow refuses by itself.
"""

from __future__ import annotations

import pyarrow as pa

#: The first pyarrow release that refuses pickled extension types by itself.
FIXED_PYARROW = (14, 0, 1)


def pyarrow_version() -> tuple[int, ...]:
    """The installed pyarrow's version as numbers (``(9, 0, 0)``); suffixes such as ``.dev1`` are dropped."""
    numbers = []
    for part in pa.__version__.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def protect_pyarrow() -> bool:
    """Close CVE-2023-47248 where the installed pyarrow is exposed; True if the hotfix was applied here.

    Raises ImportError, naming the fix, when pyarrow is older than 14.0.1 and
    ``pyarrow-hotfix`` (a dependency of fink-t2) is missing: reading alert files
    then would run whatever a crafted file carries.
    """
    if pyarrow_version() >= FIXED_PYARROW:
        return False
    try:
        import pyarrow_hotfix  # noqa: F401  (registers a refusing type for arrow.py_extension_type on import)
    except ImportError as error:
        raise ImportError(f"pyarrow {pa.__version__} unpickles extension types from file metadata "
                          "(CVE-2023-47248): install 'pyarrow-hotfix' (a fink-t2 dependency) or pyarrow >= 14.0.1"
                          ) from error
    return True


def struct_field(array: pa.Array | pa.ChunkedArray, name: str) -> pa.Array:
    """Field ``name`` of a struct array, null where the struct is null (as ``pc.struct_field``, on pyarrow 9 too)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    index = array.type.get_field_index(name)
    if index < 0:
        raise KeyError(f"the struct has no field {name!r} (fields: {[f.name for f in array.type]})")
    return array.flatten()[index]


PROTECTED = protect_pyarrow()
