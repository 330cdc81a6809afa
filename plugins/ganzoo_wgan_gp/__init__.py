"""Built-in plugin: the study's WGAN-GP (64x64 and 128x128) and the Wasserstein-GP loss.

The hooks import the networks (model.py, torch) when they run, not when ganzoo loads the
plugin, so `ganzoo --help` stays fast.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_architectures(register: Register) -> None:
    from ganzoo.api import Architecture

    from .model import build_critic, build_generator

    register(
        "wgan-gp",
        Architecture(
            build_generator=build_generator,
            build_discriminator=build_critic,
            resolutions=(64, 128),
            default_loss="wgan-gp",
            description="WGAN-GP as in the study: InstanceNorm critic without sigmoid",
            per_sample_critic=True,
            fast_layer_swaps=True,
        ),
    )


@hookimpl
def ganzoo_register_losses(register: Register) -> None:
    from .model import WGANGPLoss

    register("wgan-gp", WGANGPLoss)
