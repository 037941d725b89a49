"""Codec data: crops of the mixed speech + music corpus (``make data`` builds ``data/codec_corpus``).

The crop machinery is family-neutral (:mod:`audiolab.data.crops`); the codec's datamodule only says how its
default corpus is built (:mod:`audiolab.models.codec.corpus`) when ``data.root`` is missing.
"""

from __future__ import annotations

from audiolab.data.crops import AudioCropDataModule

__all__ = ["CodecDataModule", "CORPUS_HINT"]

CORPUS_HINT = "run `make data` (builds data/codec_corpus) or set data.root=/path/to/audio"


class CodecDataModule(AudioCropDataModule):
    """:class:`audiolab.data.crops.AudioCropDataModule` over the codec corpus (speech/ and music/ categories).

    Batches: ``{"audio": float32 [B, T], "source": list[str]}``.
    """

    root_hint = CORPUS_HINT
