"""Surveys as data: what the pipeline needs to know about ZTF or Rubin, in one description each.

A :class:`Survey` names the bands the model sees (in model-input order), their
effective wavelengths (the second axis of the preparation's Gaussian process),
the unit of the fluxes the survey delivers and Fink's input columns that carry
them. The preparation, the model metadata and the serving side read it; no
module branches on a survey's name.

A model's YAML records the survey it was trained for under the key ``survey``
(:meth:`Survey.to_dict`); a YAML without it is a ZTF model (every model written
before Rubin existed).

Pure Python: no numpy, no other module of fink_t2.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The survey of a model (or preparation) that does not name one.
DEFAULT_SURVEY = "ztf"


class UnknownSurveyError(ValueError):
    """A survey name (or description) this package does not know."""


@dataclass(frozen=True)
class Survey:
    """One survey's description. Band index ``i`` of the model input is ``bands[i]``."""

    name: str
    bands: tuple[str, ...]
    #: Effective wavelength (Angstrom) of each band, same order as ``bands``.
    wavelengths: tuple[float, ...]
    #: Unit of the survey's photometry: "mag" (ZTF PSF magnitudes) or "nJy" (Rubin difference fluxes).
    flux_unit: str
    #: Fink's concatenated input columns, in the order time, band, flux (or magnitude), its error.
    columns: tuple[str, ...]
    #: Columns read when present (ZTF: the sign of the difference flux, the limiting magnitude).
    optional_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"survey {self.name!r}: bands must be distinct and at least one, got {self.bands}")
        if len(self.wavelengths) != len(self.bands) or not all(w > 0 for w in self.wavelengths):
            raise ValueError(f"survey {self.name!r}: one positive wavelength per band, got {self.wavelengths}")

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def band_index(self) -> dict[str, int]:
        """Band name -> index in the model input (a name not in it is not a band of this survey)."""
        return {band: i for i, band in enumerate(self.bands)}

    def to_dict(self) -> dict:
        """The description as the model YAML stores it (key ``survey``): plain lists and strings."""
        return {"name": self.name, "bands": list(self.bands), "wavelengths": [float(w) for w in self.wavelengths],
                "flux_unit": self.flux_unit, "columns": list(self.columns),
                "optional_columns": list(self.optional_columns)}

    @classmethod
    def from_dict(cls, values: dict, source: str = "survey description") -> "Survey":
        """The registered survey ``values`` describes; an unknown name or a description that differs
        from this package's is an error naming ``source`` (a model made for another pipeline)."""
        if not isinstance(values, dict) or not isinstance(values.get("name"), str):
            raise UnknownSurveyError(f"{source}: 'survey' must be a mapping with a 'name' "
                                     f"(one of {sorted(SURVEYS)}), got {values!r}")
        survey = get_survey(values["name"])
        expected = survey.to_dict()
        unknown = sorted(str(key) for key in values if key not in expected)
        if unknown:
            raise UnknownSurveyError(f"{source}: unknown key(s) {unknown} in 'survey' (known: {list(expected)})")
        for key, value in values.items():
            if value != expected[key]:
                raise UnknownSurveyError(f"{source}: survey {survey.name!r} has {key} {value!r}, this package "
                                         f"describes it with {expected[key]!r}: the model was made for another "
                                         "version of the pipeline; write it again with 'fink-t2 compress'")
        return survey


#: ZTF as Fink delivers it: g and r PSF magnitudes (fid 1, 2) in the ``c*`` columns of ``candidate`` /
#: ``prv_candidates``. Wavelengths are those of the original t2 (docs: ../shared/REFERENCE.md).
ZTF = Survey(
    name="ztf",
    bands=("g", "r"),
    wavelengths=(4804.79, 6436.92),
    flux_unit="mag",
    columns=("cjd", "cfid", "cmagpsf", "csigmapsf"),
    optional_columns=("cisdiffpos", "cdiffmaglim"),
)

#: Rubin (LSST) as Fink's Rubin stage delivers it: ``concat_col`` over ``diaSource`` / ``prvDiaSources``
#: of the PSF difference flux in nJy (negative values are measurements). Bands u g r i z y are PLAsTiCC's
#: passbands 0-5, with the effective wavelengths t2 was trained with.
RUBIN = Survey(
    name="rubin",
    bands=("u", "g", "r", "i", "z", "y"),
    wavelengths=(3685.0, 4802.0, 6231.0, 7542.0, 8690.0, 9736.0),
    flux_unit="nJy",
    columns=("cmidpointMjdTai", "cband", "cpsfFlux", "cpsfFluxErr"),
)

#: Every survey this package can prepare, by name.
SURVEYS: dict[str, Survey] = {survey.name: survey for survey in (ZTF, RUBIN)}


def get_survey(name: str) -> Survey:
    """The registered survey ``name``; an unknown name is an error listing the known ones."""
    survey = SURVEYS.get(name) if isinstance(name, str) else None
    if survey is None:
        raise UnknownSurveyError(f"unknown survey {name!r}; known surveys: {', '.join(sorted(SURVEYS))}")
    return survey


def model_survey(meta: dict, source: str = "model metadata") -> Survey:
    """The survey of a model from its metadata: its ``survey`` key, ZTF when absent."""
    if "survey" not in meta:
        return SURVEYS[DEFAULT_SURVEY]
    return Survey.from_dict(meta["survey"], source)


__all__ = ["DEFAULT_SURVEY", "RUBIN", "SURVEYS", "Survey", "UnknownSurveyError", "ZTF", "get_survey",
           "model_survey"]
