"""Training losses: spectral (multi-scale STFT and mel), SI-SDR, level."""

from audiolab.losses.level import rms_ratio_loss
from audiolab.losses.sdr import neg_si_sdr_loss, si_sdr
from audiolab.losses.spectral import MultiScaleMelLoss, MultiScaleSpectralLoss, auraloss_equivalent

__all__ = ["MultiScaleSpectralLoss", "MultiScaleMelLoss", "auraloss_equivalent", "si_sdr", "neg_si_sdr_loss",
           "rms_ratio_loss"]
