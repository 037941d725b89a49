"""``python -m audiolab.prepare <recipe> key=value …`` — data preparation entry point.

Recipes: ``ddsp`` (resample to 16 kHz, CREPE f0 + confidence, A-weighted loudness at 250 Hz, cached);
``codec_corpus`` (build the mixed speech + music corpus ``data/codec_corpus`` from Debian packages);
``codec_tokens`` (tokenize an audio folder with a codec checkpoint for the token LM);
``tse_corpus`` (speaker folders for target speaker extraction from Debian TTS voices, prompts and word recordings).
"""

from __future__ import annotations

import logging
import sys

RECIPES = {
    "ddsp": "audiolab.models.ddsp.data:prepare_main",
    "codec_corpus": "audiolab.models.codec.corpus:main",
    "codec_tokens": "audiolab.models.codec.tokens:prepare_main",
    "tse_corpus": "audiolab.models.tse.corpus:main",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in RECIPES:
        known = ", ".join(sorted(RECIPES))
        msg = f"usage: python -m audiolab.prepare <recipe> key=value ...  (recipes: {known})"
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"unknown recipe {argv[0]!r}. {msg}")
        print(msg)
        return
    module_name, func = RECIPES[argv[0]].split(":")
    import importlib

    getattr(importlib.import_module(module_name), func)(argv[1:])


if __name__ == "__main__":
    main()
