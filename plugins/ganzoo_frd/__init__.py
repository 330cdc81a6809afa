"""Built-in plugin: the Frechet Radiomic Distance (`frd`), a second opinion beside Inception.

Inception features are not medical; FRD compares images through radiomic features
(intensity, texture, wavelet) as frd-score's FRDv1 computes them with pyradiomics. Optional:
`pip install 'ganzoo[frd]'`; no weights, nothing downloaded. Modules: `features` (pyradiomics
on in-memory images, in worker processes), `cache` (the real sets' features), `metric` (the
normalisation and the Frechet distance). Registering the metric imports none of them.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_metrics(register: Register) -> None:
    from .metric import FRD_METRIC

    register("frd", FRD_METRIC)
