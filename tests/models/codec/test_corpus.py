"""The codec's data: the corpus builder (against flite when installed; missing tools named) and the datamodule's
missing-corpus hint."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from audiolab.models.codec.data import CodecDataModule


def test_missing_root_mentions_make_data(tmp_path):
    dm = CodecDataModule(str(tmp_path / "nope"), str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="make data"):
        dm.prepare_data()


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (apt-get install flite)")
def test_flite_smoke(tmp_path):
    from audiolab.models.codec.corpus import render_flite

    out = tmp_path / "one.wav"
    render_flite("The quick brown fox jumps over the lazy dog.", "slt", out)
    x, sr = sf.read(str(out), dtype="float32")
    assert sr == 16000 and x.ndim == 1 and len(x) > sr  # > 1 s of speech
    assert 10 * np.log10(np.mean(x**2)) > -40
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic write left no temp file


def test_corpus_missing_tool_names_the_package(tmp_path, monkeypatch):
    import audiolab.models.codec.corpus as cc

    monkeypatch.setattr("shutil.which", lambda name: None)  # the tool lookup is audiolab.audio.speech.which_tool
    with pytest.raises(cc.CorpusError, match=r"flite not found: apt-get install flite \(make data\)"):
        cc.build_corpus(tmp_path / "out", sources=("flite",), progress=False)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(cc.CorpusError, match="apt-get install fluid-soundfont-gm"):
        cc._plan_fluidsynth(0, None, soundfont=tmp_path / "missing.sf2")
    with pytest.raises(cc.CorpusError, match="apt-get install sonic-pi-samples"):
        cc._plan_sonicpi(None, sonicpi_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="unknown sources"):
        cc.build_corpus(tmp_path / "out", sources=("espeak",), progress=False)
