"""Built-in plugin: the study's DCGAN (64x64, plus a 128x128 variant) and the BCE loss.

The hooks import the networks (model.py, torch) when they run, not when ganzoo loads the
plugin, so `ganzoo --help` stays fast.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_architectures(register: Register) -> None:
    from ganzoo.api import Architecture

    from .model import build_discriminator, build_generator

    register(
        "dcgan",
        Architecture(
            build_generator=build_generator,
            build_discriminator=build_discriminator,
            resolutions=(64, 128),
            default_loss="bce",
            description="DCGAN (Radford et al.) as in the study: BatchNorm discriminator, BCE loss",
        ),
    )


@hookimpl
def ganzoo_register_losses(register: Register) -> None:
    from .model import BCELoss

    register("bce", BCELoss)
