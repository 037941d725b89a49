"""Kick-drum latent diffusion: data -> VAE (log-mel 1x128x173 <-> latent 4x8x11) -> keyword-conditioned latent
U-Net -> HiFi-GAN vocoder -> 2-s WAV, generated on CPU (CLI and web page).

Files: ``keywords`` (file-name rules, vocabulary), ``synth`` (parametric labelled kicks), ``audio`` (clip
conventions and the mel settings), ``data`` (prepare recipes, datamodule), ``vae``, ``unet``, ``diffusion``
(diffusers schedulers, training targets, CFG sampling), ``hifigan`` (generator), ``module`` (the three training
recipes), ``metrics``, ``pipeline`` (checkpoint -> generator), ``generate`` / ``serve`` (CLI, web page), ``bench``.
"""
