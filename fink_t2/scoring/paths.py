"""Where fink-t2 finds its files, whether installed (a wheel in site-packages) or run from a checkout.

Nothing here is derived from the checkout's layout unless the package really
runs from a checkout: the sample alerts and the default configurations are
package data (``fink_t2/resources``), and the project's shared data (PLAsTiCC,
the real ZTF alerts) is wherever :data:`SHARED_ENV` says, or ``../shared``
beside a checkout, or ``./shared`` in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the shared-data folder (it holds ``data/plasticc``, ``data/ztf_alerts``).
SHARED_ENV = "FINK_T2_SHARED"

#: The installed ``fink_t2`` package folder (this file is ``fink_t2/scoring/paths.py``).
PACKAGE = Path(__file__).resolve().parent.parent
#: Files shipped inside the package (the sample alerts, the default configurations).
RESOURCES = PACKAGE / "resources"
#: The model files shipped inside the package (``t2.tflite`` and its metadata ``t2.yaml``).
MODELS = PACKAGE / "data"


def default_model(survey: str = "ztf") -> Path:
    """The model shipped for ``survey``'s alerts: ``t2.tflite`` for ZTF (as ever), ``t2_<survey>.tflite`` otherwise."""
    return MODELS / ("t2.tflite" if survey == "ztf" else f"t2_{survey}.tflite")


def checkout_root() -> Path | None:
    """The repository root if the package runs from a checkout (editable install, PYTHONPATH), else None."""
    root = PACKAGE.parent
    return root if (root / "setup.py").is_file() and (root / "conf").is_dir() else None


def resource(*parts: str) -> Path:
    """A file shipped with the package, e.g. ``resource("conf", "train.yaml")``."""
    return RESOURCES.joinpath(*parts)


def shared_dir() -> Path:
    """The shared-data folder: ``$FINK_T2_SHARED``, else ``../shared`` beside a checkout, else ``./shared``."""
    configured = os.environ.get(SHARED_ENV)
    if configured:
        return Path(configured).expanduser()
    root = checkout_root()
    return root.parent / "shared" if root is not None else Path.cwd() / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside the shared-data folder (:func:`shared_dir`), resolved when called."""
    return shared_dir().joinpath(*parts)


def config_file(name: str) -> Path:
    """A default configuration (``stream.yaml``, ``cuts.yaml``, ``train.yaml``) as shipped in the package."""
    return resource("conf", name)


def default_config(name: str) -> str:
    """``conf/<name>`` of the working directory (a checkout), else the configuration shipped in the package."""
    local = Path("conf") / name
    return str(local) if local.is_file() else str(config_file(name))


#: The 329 real alerts of ``data/alerts_sample.parquet``, shipped as package data (installed or not).
SAMPLE_ALERTS = resource("alerts_sample.parquet")
#: The 48 Rubin alerts of ``data/rubin_alerts_sample.parquet`` (lsst v10.0 and v7.1), shipped as package data.
SAMPLE_RUBIN_ALERTS = resource("rubin_alerts_sample.parquet")
#: The project's Rubin alerts (parquet and Avro, every schema version): ``data/rubin_alerts`` in the shared folder.
SHARED_RUBIN_ALERTS = shared_path("data", "rubin_alerts")
#: The project's real ZTF alerts: ``data/ztf_alerts`` in the shared-data folder (``$FINK_T2_SHARED``,
#: else ``../shared`` beside a checkout). It may not exist (a user's clone).
SHARED_ZTF_ALERTS = shared_path("data", "ztf_alerts")


def alert_files(folder: str | Path) -> list[Path]:
    """The parquet files of ``folder`` that hold alerts (a ZTF ``candidate`` or Rubin ``diaSource`` column), sorted.

    The shared alert folder also holds labels beside the alerts (``vsx_labels.parquet``): they are left out.
    """
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("*.parquet"))
    return [path for path in files if {"candidate", "diaSource"} & set(pq.read_schema(path).names)]
