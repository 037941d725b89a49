"""Stores the resolved run config inside every checkpoint so evaluate/inference rebuild the exact model."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

CONFIG_KEY = "audiolab_config"


class ConfigEmbedder(Callback):
    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config
