"""Built-in plugin: DiffAugment (Zhao et al. 2020), `--augment diffaugment:color,translation,cutout`.

The transforms live in transforms.py (torch), imported when the hook runs, so `ganzoo --help`
stays fast.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_augmentations(register: Register) -> None:
    from ganzoo.api import Augmentation

    from .transforms import build

    register(
        "diffaugment",
        Augmentation(
            build=build,
            description="DiffAugment (Zhao et al. 2020): color, translation, cutout on real and fake images",
        ),
    )
