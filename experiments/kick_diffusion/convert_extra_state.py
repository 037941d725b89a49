"""One-off migration used by this study: a ``kick_unet`` checkpoint written before the keyword vocabulary moved
from the module's ``_extra_state`` into the fixed-size ``vocabulary_utf8`` buffer (commit ccaf196) -> a copy the
current loader accepts. Weights, EMA state and everything else are copied unchanged.

    python experiments/kick_diffusion/convert_extra_state.py OLD.ckpt NEW.ckpt
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    args = p.parse_args()
    ck = torch.load(args.src, map_location="cpu", weights_only=False)
    sd = ck["state_dict"]
    if "_extra_state" not in sd:
        raise SystemExit(f"{args.src}: no '_extra_state' in state_dict (nothing to convert)")
    old = sd.pop("_extra_state")
    max_keywords = int(ck["hyper_parameters"]["unet"].get("max_keywords", 512))
    data = json.dumps(old["vocabulary"]).encode()
    buf = torch.zeros(64 * max_keywords, dtype=torch.uint8)  # KickDiffusionModule: 64 bytes per keyword slot
    if len(data) > buf.numel():
        raise SystemExit(f"{args.src}: vocabulary takes {len(data)} bytes > {buf.numel()}")
    buf[: len(data)] = torch.tensor(list(data), dtype=torch.uint8)
    sd["vocabulary_utf8"] = buf
    torch.save(ck, args.dst)
    print(f"{args.dst}: vocabulary of {len(old['vocabulary']['words'])} words moved into vocabulary_utf8")


if __name__ == "__main__":
    main()
