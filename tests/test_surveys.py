"""Surveys as data (issue 13): the registry, the model YAML's ``survey`` key, N-band preparation."""

import numpy as np
import pytest
import yaml

from fink_t2.scoring.lightcurves import (
    MAX_GAP_SCALES,
    NJY_TO_FLUXCAL,
    REASON_NO_DETECTION,
    Observations,
    PreparationConfig,
    njy_to_fluxcal,
    prepare,
)
from fink_t2.scoring.runtime import ModelFileError, metadata_identity, read_metadata, write_metadata
from fink_t2.scoring.surveys import RUBIN, SURVEYS, ZTF, Survey, UnknownSurveyError, get_survey, model_survey

RUBIN_PREP = PreparationConfig(n_steps=16, step_days=3.0, context_channels=True, survey="rubin", host_redshift=True)


def test_registry_holds_ztf_and_rubin():
    assert set(SURVEYS) == {"ztf", "rubin"}
    assert get_survey("ztf") is ZTF and get_survey("rubin") is RUBIN
    assert ZTF.bands == ("g", "r") and RUBIN.bands == ("u", "g", "r", "i", "z", "y")
    assert list(RUBIN.wavelengths) == sorted(RUBIN.wavelengths)  # blue to red, one per band
    assert RUBIN.band_index["y"] == 5 and ZTF.band_index["r"] == 1


def test_unknown_survey_names_the_known_ones():
    with pytest.raises(UnknownSurveyError, match=r"unknown survey 'lsst'; known surveys: rubin, ztf"):
        get_survey("lsst")
    with pytest.raises(ValueError, match="known surveys"):
        PreparationConfig(survey="decam")


def test_survey_description_round_trip_and_mismatch():
    assert Survey.from_dict(RUBIN.to_dict()) is RUBIN
    assert model_survey({}) is ZTF  # a model YAML without the key is ZTF
    changed = {**RUBIN.to_dict(), "wavelengths": [3000.0, 4802.0, 6231.0, 7542.0, 8690.0, 9736.0]}
    with pytest.raises(UnknownSurveyError, match="wavelengths"):
        Survey.from_dict(changed, "t.yaml")
    with pytest.raises(UnknownSurveyError, match="unknown key"):
        Survey.from_dict({**RUBIN.to_dict(), "colour": "blue"})


def test_survey_round_trip_in_the_model_yaml(tmp_path):
    data = b"not a flatbuffer, only metadata is read here"
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    write_metadata(path, data, RUBIN_PREP)
    meta = read_metadata(path)
    assert meta["survey"] == RUBIN.to_dict() and meta["bands"] == list(RUBIN.bands)
    assert meta["input_shape"] == [None, 16, 6 + 7 + 2]
    assert model_survey(meta) is RUBIN
    assert PreparationConfig.from_dict(meta["preparation"]) == RUBIN_PREP
    # The survey is in the identity: editing it is refused.
    meta["survey"]["flux_unit"] = "mag"
    path.with_suffix(".yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    with pytest.raises(ModelFileError, match="changed after the model was written|flux_unit"):
        read_metadata(path)
    # An unknown survey (identity recomputed, as a careless writer would) names the known ones.
    meta["survey"] = {**RUBIN.to_dict(), "name": "lsst"}
    meta["identity_sha256"] = metadata_identity(meta)
    path.with_suffix(".yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    with pytest.raises(ModelFileError, match="known surveys: rubin, ztf"):
        read_metadata(path)


def test_ztf_model_yaml_has_no_survey_key(tmp_path):
    data = b"x" * 10
    path = tmp_path / "z.tflite"
    path.write_bytes(data)
    write_metadata(path, data, PreparationConfig(context_channels=True))
    meta = read_metadata(path)
    assert "survey" not in meta and meta["bands"] == ["g", "r"]
    assert set(meta["preparation"]) == set(PreparationConfig().to_dict())
    assert "survey" not in meta["preparation"] and "host_redshift" not in meta["preparation"]


def _rubin_object(bands, n=12, t0=60000.0, peak=100.0):
    t = t0 + np.arange(n) * 2.0
    band = np.asarray([bands[i % len(bands)] for i in range(n)])
    flux = peak * np.exp(-0.5 * ((t - t.mean()) / 8.0) ** 2)
    return t, band, flux


def test_six_band_preparation_shapes_channels_and_redshift():
    parts = [_rubin_object([0, 1, 2, 3, 4, 5]), _rubin_object([1, 2]), _rubin_object([3])]
    idx = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    t, band, flux = (np.concatenate([p[k] for p in parts]) for k in range(3))
    obs = Observations(idx, t, band, flux, np.full(len(t), 2.0), np.ones(len(t), bool), 4)  # object 3: no data
    host_z = np.array([0.3, np.nan, -1.0, 0.5])
    batch = prepare(obs, RUBIN_PREP, host_z=host_z)
    assert RUBIN_PREP.channel_names == ("u", "g", "r", "i", "z", "y", "age", "gap_u", "gap_g", "gap_r", "gap_i",
                                        "gap_z", "gap_y", "host_z", "host_z_known")
    assert batch.values.shape == (4, 16, 15)
    assert batch.ok.tolist() == [True, True, True, False]
    v = batch.values
    # Every band of the six-band object carries flux; the gap channels are small where data are.
    assert (np.abs(v[0, -6:, :6]).max(axis=0) > 0.1).all()
    assert (v[0, -6:, 7:13] <= 1.0).all()
    # The g/r object: u..y are inferred through the band correlation, strongest next to g/r.
    near, far = np.abs(v[1, :, 3]).max(), np.abs(v[1, :, 5]).max()  # i (next to r) vs y
    assert near > far > 0
    assert np.allclose(v[1, :, [7, 10, 11, 12]], MAX_GAP_SCALES)  # no u, i, z, y point: the prior only
    # Host redshift: log(1 + z) and the known flag, constant in time; NaN and negative are unknown.
    assert np.allclose(v[0, :, 13], np.log1p(0.3)) and np.allclose(v[0, :, 14], 1.0)
    assert np.allclose(v[1, :, 13:], 0.0) and np.allclose(v[2, :, 13:], 0.0)
    assert not v[3].any()
    # Without host_z, every object is "unknown"; the rest of the input does not depend on it.
    blind = prepare(obs, RUBIN_PREP).values
    assert np.allclose(blind[..., 13:], 0.0) and np.array_equal(blind[..., :13], v[..., :13])


def test_bands_outside_the_survey_are_dropped_and_named_in_the_reason():
    obs = Observations([0, 0, 1], [1.0, 2.0, 3.0], [3, 4, 5], [10.0, 12.0, 9.0], [1.0, 1.0, 1.0],
                       [True, True, True], 2)
    ztf = prepare(obs, PreparationConfig())  # bands 3-5 are not ZTF bands
    assert not ztf.ok.any() and ztf.values.shape == (2, 32, 2)
    rubin = prepare(obs, PreparationConfig(survey="rubin"))
    assert rubin.ok.all() and rubin.values.shape == (2, 32, 6)
    assert PreparationConfig().reason_no_detection == REASON_NO_DETECTION
    assert PreparationConfig(survey="rubin").reason_no_detection == "no valid u/g/r/i/z/y detection"


def test_njy_to_fluxcal_keeps_the_sign():
    flux, err = njy_to_fluxcal([3631e9 * 10 ** (-0.4 * 27.5), -100.0], [10.0, 10.0])
    assert flux[0] == pytest.approx(1.0, rel=1e-3)  # magnitude 27.5 is FLUXCAL 1
    assert flux[1] == pytest.approx(-100.0 * NJY_TO_FLUXCAL) and flux[1] < 0
    assert err[1] == pytest.approx(10.0 * NJY_TO_FLUXCAL)
