"""Timbre transfer like magenta's colab: dataset statistics stored in checkpoints, note detection, quantile
loudness mapping, octave shift, and the ``--auto-adjust`` CLI flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiolab.models.ddsp.transfer import (
    STATS_KEY,
    auto_adjust,
    dataset_statistics,
    detect_notes,
    hz_to_midi,
    quantile_map,
    read_dataset_statistics,
)


def _source(seconds: float, midi: float, level_db: float, seed: int) -> dict[str, np.ndarray]:
    """A phrase: notes at ``level_db`` +- 6 dB separated by silences, f0 at ``midi``, confident where loud."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 250)
    on = (np.arange(n) // 100) % 2 == 0  # 0.4 s on, 0.4 s off
    ld = np.where(on, level_db + rng.uniform(-6, 6, n), -80.0)
    conf = np.where(on, 0.95, 0.1)
    f0 = np.full(n, 440.0 * 2 ** ((midi - 69) / 12))
    return {"f0_hz": f0, "confidence": conf, "loudness_db": ld}


def test_hz_to_midi_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    f = np.array([27.5, 110.0, 261.63, 1000.0])
    np.testing.assert_allclose(hz_to_midi(f), librosa.hz_to_midi(f), atol=1e-9)
    assert hz_to_midi(np.array([0.0, -5.0])).tolist() == [0.0, 0.0]


def test_detect_notes_closed_form() -> None:
    src = _source(4.0, 69, -20.0, 0)
    mask, ratio = detect_notes(src["loudness_db"], src["confidence"], smoothing=1)
    # unsmoothed: ratio = conf^2 (ld + 80) / ((mean + 80) 0.49)
    mean = src["loudness_db"].mean()
    np.testing.assert_allclose(ratio, src["confidence"] ** 2 * (src["loudness_db"] + 80) / ((mean + 80) * 0.49))
    on = (np.arange(1000) // 100) % 2 == 0
    assert mask[on].all() and not mask[~on].any()


def test_quantile_map_gives_the_target_distribution_and_keeps_order() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(-30, 3, 5000)
    target = np.sort(rng.uniform(-10, 0, 5000))
    levels = np.linspace(0, 1, 1000)
    y = quantile_map(x, np.quantile(target, levels))
    assert np.all(np.diff(y[np.argsort(x)]) >= -1e-9)  # monotone in x
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(y, q) - np.quantile(target, q)) < 0.15


def test_dataset_statistics_plain_types() -> None:
    stats = dataset_statistics([_source(6.0, 60, -10.0, 1), _source(5.0, 64, -10.0, 2)])
    assert stats["mean_pitch_note"] == pytest.approx((60 * 600 + 64 * 500) / 1100, abs=0.6)
    assert -16 < stats["mean_loudness_db_note"] < -4
    assert len(stats["loudness_db_quantiles"]) == len(stats["pitch_quantiles"]) == len(stats["quantile_levels"])

    def plain(v) -> bool:
        return isinstance(v, (int, float, str)) or (isinstance(v, list) and all(isinstance(e, float) for e in v))

    assert all(plain(v) for v in stats.values())


def test_stats_survive_a_weights_only_load(tmp_path: Path) -> None:
    stats = dataset_statistics([_source(6.0, 60, -10.0, 1)])
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, STATS_KEY: stats}, path)
    assert torch.load(path, weights_only=True)[STATS_KEY] == stats  # no pickled objects
    assert read_dataset_statistics(path) == stats
    torch.save({"state_dict": {}}, path)
    assert read_dataset_statistics(path) is None


def test_auto_adjust_shifts_octaves_and_maps_loudness() -> None:
    stats = dataset_statistics([_source(8.0, 76, -8.0, 3)])  # a high, loud training set
    quiet_low = _source(4.0, 51, -35.0, 4)  # an input 25 semitones lower and 27 dB quieter
    adj = auto_adjust(quiet_low["f0_hz"], quiet_low["loudness_db"], quiet_low["confidence"], stats)
    # (76 - 51) / 12 = 2.08 octaves -> floor (above 1.5) -> 2
    assert adj["octaves"] == 2.0
    np.testing.assert_allclose(adj["f0_hz"], quiet_low["f0_hz"] * 4, rtol=1e-6)
    on = adj["mask_on"]
    assert abs(float(np.median(adj["loudness_db"][on])) - float(np.median(stats["loudness_db_quantiles"]))) < 1.0
    assert adj["loudness_db"][~on].max() <= quiet_low["loudness_db"][~on].max()  # note-off parts not raised
    # ceil below 1.5 octaves: 1.3 octaves up -> 2; -0.6 -> 0 (ceil), as the colab rounds
    for midi, octaves in ((76 - 15.6, 2.0), (76 + 7.2, -0.0)):
        src = _source(4.0, midi, -8.0, 5)
        assert auto_adjust(src["f0_hz"], src["loudness_db"], src["confidence"], stats)["octaves"] == octaves


def test_auto_adjust_without_notes_changes_nothing() -> None:
    n = 500
    f0, ld, conf = np.full(n, 200.0), np.full(n, -70.0), np.zeros(n)
    adj = auto_adjust(f0, ld, conf, dataset_statistics([_source(4.0, 60, -10.0, 6)]))
    assert not adj["notes"] and adj["octaves"] == 0.0
    np.testing.assert_array_equal(adj["f0_hz"], f0.astype(np.float32))
    np.testing.assert_array_equal(adj["loudness_db"], ld.astype(np.float32))
