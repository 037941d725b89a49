"""Adversarial training shared by the GAN families (codec: MS-STFTD + hinge; HiFi-GAN vocoder: MPD + MSD + LSGAN).

* ``discriminators``: :class:`MultiScaleSTFTDiscriminator` (EnCodec), :class:`MultiPeriodDiscriminator` and
  :class:`MultiScaleDiscriminator` (HiFi-GAN), :class:`CombinedDiscriminator` / :func:`hifigan_discriminator`
  (MPD + MSD under one optimizer). All map audio ``[B, T]`` to ``(logits, feature_maps)`` per sub-discriminator.
* ``losses``: hinge and least-squares discriminator / generator losses, L1 feature matching; each returns
  ``(total, per_discriminator)`` with ``"mean"`` (audiocraft) or ``"sum"`` (HiFi-GAN) reduction.
* ``step``: :class:`GANStep`, the one manual-optimization training step (D then G, per-optimizer clipping,
  per-step or per-epoch schedulers, ``start_step``, optional balancer, logging) and :func:`gan_optimizers`.
* ``balancer``: :class:`LossBalancer` (EnCodec / audiocraft gradient balancer).
"""

from audiolab.adversarial.balancer import LossBalancer
from audiolab.adversarial.discriminators import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
    STFTDiscriminator,
    hifigan_discriminator,
)
from audiolab.adversarial.losses import (
    adversarial_losses,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from audiolab.adversarial.step import GANStep, GANStepOutput, gan_optimizers

__all__ = [
    "CombinedDiscriminator",
    "GANStep",
    "GANStepOutput",
    "LossBalancer",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "ScaleDiscriminator",
    "adversarial_losses",
    "feature_matching_loss",
    "gan_optimizers",
    "hifigan_discriminator",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]
