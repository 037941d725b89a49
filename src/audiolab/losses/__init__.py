"""Training losses."""

from audiolab.losses.spectral import MultiScaleSpectralLoss, auraloss_equivalent

__all__ = ["MultiScaleSpectralLoss", "auraloss_equivalent"]
