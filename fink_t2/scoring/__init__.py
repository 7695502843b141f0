"""The serving core: alert columns -> calibrated class probabilities, and everything that needs.

Classes, surveys, alert columns (ZTF, Rubin) -> observations, light-curve preparation, the verified LiteRT
model, calibration, selection cuts, scoring and the ``t2`` column, alert-file and preflight checks, strict YAML,
package paths.
May import numpy, pandas, pyarrow, pyyaml and the LiteRT interpreter, and nothing else of fink_t2: never
pyspark, TensorFlow, or the spark, tools, training and bench subpackages (tests/test_layout.py checks).

The names below are the public serving API, each imported from its module on first use (so that
``import fink_t2`` stays cheap).
"""

from __future__ import annotations

import importlib

# Before any alert file is read: pyarrow < 14.0.1 would unpickle a crafted file's metadata (CVE-2023-47248).
from fink_t2.scoring import arrow_compat  # noqa: F401

#: Public name -> the module of ``fink_t2.scoring`` that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("CLASSES", "CLASS_CODES", "CLASS_FIELDS", "FIELD_OF_CLASS", "N_CLASSES"), "classes"),
    **dict.fromkeys(("OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "alert_columns", "alert_columns_from_files",
                     "observations_from_alerts", "observations_from_columns"), "alerts"),
    **dict.fromkeys(("Observations", "PreparationConfig", "prepare"), "lightcurves"),
    **dict.fromkeys(("HOST_Z_COLUMN", "RUBIN_COLUMNS", "observations_from_rubin", "rubin_alert_columns"),
                    "rubin_alerts"),
    **dict.fromkeys(("DEFAULT_MODEL", "ModelFileError", "T2Model", "get_model", "load_model"), "runtime"),
    **dict.fromkeys(("EXTRAGALACTIC_XMATCH", "FINK_CUTS", "Cuts", "Selector", "cut_reasons", "load_cuts",
                     "make_selector"), "cuts"),
    **dict.fromkeys(("MIN_DETECTIONS", "SCORING_CHUNK", "Scores", "classify", "classify_with_reasons",
                     "min_detections", "reason_too_few", "score_alerts", "score_columns", "score_stages"),
                    "classifier"),
    **dict.fromkeys(("T2_EXTRA_FIELDS", "T2_FIELDS", "T2_HBASE_COLUMNS", "T2_TYPE_DDL", "t2_arrow",
                     "t2_arrow_type", "t2_frame", "t2_probabilities", "hbase_name", "top_classes"), "column"),
    "ConfigError": "config",
    "InputError": "inputs",
    "SAMPLE_ALERTS": "paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fink_t2.scoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fink_t2.scoring.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
