"""The codec's data: the corpus builder (against flite when installed; missing tools named) and the datamodule's
missing-corpus hint."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from audiolab.data.cache import current_umask
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
    assert not list(tmp_path.glob(".*"))  # atomic write left no temp file
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # the user's umask, not mkstemp's 0600


def test_corpus_missing_tool_names_the_package(tmp_path, monkeypatch):
    import dataclasses

    import audiolab.models.codec.corpus as cc
    from audiolab.data import sources

    gone = tuple(dataclasses.replace(s, path=str(tmp_path / "gone" / s.name)) if s.installer == "apt" else s
                 for s in sources.SOURCES)
    monkeypatch.setattr(sources, "SOURCES", gone)
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    with pytest.raises(cc.CorpusError, match=r"^flite: .* not found: apt-get install flite \(make data\)$"):
        cc.build_corpus(tmp_path / "out", sources=("flite",), progress=False)
    for source, package in (("asterisk", "asterisk-core-sounds-en-g722"), ("fluidsynth", "fluidsynth"),
                            ("sonicpi", "sonic-pi-samples")):
        with pytest.raises(cc.CorpusError, match=rf"not found: apt-get install {package} \(make data\)$"):
            cc.build_corpus(tmp_path / "out", sources=(source,), progress=False)
    monkeypatch.setattr(sources.shutil, "which", lambda name: f"/bin/{name}")
    with pytest.raises(cc.CorpusError, match=r"^fluidr3_gm: .* not found: apt-get install fluid-soundfont-gm"):
        cc._plan_fluidsynth(0, None)
    with pytest.raises(cc.CorpusError, match="apt-get install fluid-soundfont-gm"):
        cc._plan_fluidsynth(0, None, soundfont=tmp_path / "missing.sf2")
    with pytest.raises(ValueError, match="unknown sources"):
        cc.build_corpus(tmp_path / "out", sources=("espeak",), progress=False)


def _have(name: str) -> bool:
    from audiolab.data import sources

    try:
        sources.locate(name)
    except sources.SourceMissing:
        return False
    return True


@pytest.mark.skipif(not (_have("asterisk_en_g722") and _have("ffmpeg") and _have("sonicpi_samples")),
                    reason="asterisk-core-sounds-en-g722 / imageio-ffmpeg / sonic-pi-samples not installed (make data)")
def test_corpus_builds_from_the_packages_make_data_installs(tmp_path):
    """A fresh machine has only what `make data` installs: no `sounds/en` link (asterisk-core-sounds-en's postinst).
    The builder reads the voice folder of asterisk-core-sounds-en-g722 and still builds."""
    import audiolab.models.codec.corpus as cc

    manifest = cc.build_corpus(tmp_path / "c", sources=("asterisk", "sonicpi"), max_per_source=2, progress=False)
    files = {e["source"]: e for e in manifest["files"]}
    assert set(files) == {"asterisk", "sonicpi"} and len(manifest["files"]) == 4
    assert "/en_US_f_Allison/" in files["asterisk"]["params"]["original"]
    assert files["asterisk"]["sample_rate"] == 16000 and files["asterisk"]["seconds"] > 0.2
    assert not list((tmp_path / "c").rglob(".*.tmp")) and not list((tmp_path / "c").rglob(".*.wav"))
