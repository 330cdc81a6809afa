"""Built-in plugin: `ganzoo audit`, a calibrated memorization audit: are a GAN's samples
copies of its training images?

Modules: `sources` (training, held-out and generated images), `features` (the `pixels` space
and registered feature extractors), `distances` (exact nearest neighbours, the calibrated
threshold), `copying` (Meehan et al.'s C_T), `analysis` (the numbers, shared with the
calibration), `membership` (the discriminator's white-box check), `report` and `figures`
(outputs), `run` (`audit()`), `command` (the CLI) and `calibration` (planted copies).
Registering imports nothing heavy: the hooks import the modules.

`from ganzoo_audit import audit` or `ganzoo.audit(...)` (through the `audits` registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ganzoo.api import Register, hookimpl

if TYPE_CHECKING:
    import typer

__all__ = ["audit"]


def audit(model: Any = None, **options: Any) -> dict[str, Any]:
    """Audit a checkpoint's samples (or `generated=DIR`) for copies of its training images; see `run.audit`."""
    from .run import audit as run_audit

    return run_audit(model, **options)


@hookimpl
def ganzoo_register_audits(register: Register) -> None:
    register("memorization", audit)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .command import register as register_audit

    register_audit(app)
