"""One DICOM file to a 16-bit grayscale image, in the order the standard gives: Modality LUT
(rescale slope/intercept), then the VOI LUT or window, then MONOCHROME1 inversion.

Every reason a file is refused names only technical attributes (never a value that could
identify the patient), because it is logged and kept in the dataset cache.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ganzoo.api import DataError, UnreadableImage

MAX_PIXELS = 100_000_000
TOP = 65535  # the decoded image spans 0..TOP (uint16) until the final reduction to the model's range
AUTO_PERCENTILES = (0.5, 99.5)  # `--window auto`: these percentiles of the modality values map to black and white


def parse_window(text: str | None) -> tuple[float, float] | str | None:
    """`--window`: None (the file's own VOI), "auto", or (center, width) with width > 0."""
    if text is None or text == "":
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise DataError(f"--window must be CENTER,WIDTH (e.g. 40,400) or auto, got {text!r}") from None
    if not width > 0:
        raise DataError(f"--window width must be > 0, got {width:g}")
    return center, width


def decoder_plugins() -> dict[str, list[str]]:
    """pydicom's version and its usable decoders per compressed transfer syntax. Part of the dataset
    cache key: a file skipped for want of a decoder is decoded once one is installed."""
    import pydicom
    from pydicom.pixels import get_decoder
    from pydicom.uid import AllTransferSyntaxes

    found: dict[str, list[str]] = {"pydicom": [pydicom.__version__]}
    for uid in AllTransferSyntaxes:
        if uid.is_compressed:
            try:
                found[str(uid)] = sorted(get_decoder(uid).available_plugins)
            except NotImplementedError:  # pydicom has no decoder for it at all (video, JPIP)
                continue
    return found


def read_dicom(path: Path, window: tuple[float, float] | str | None = None) -> tuple[np.ndarray, "object"]:
    """(uint16 image spanning 0..65535, the dataset) or UnreadableImage saying why not."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():  # pydicom's value warnings can quote attribute values: never shown
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as error:
            raise UnreadableImage(f"not a readable DICOM file ({type(error).__name__})") from None
        except OSError as error:
            raise UnreadableImage(f"cannot read the file ({error.strerror or type(error).__name__})") from None
        if "PixelData" not in ds:
            kind = "FloatPixelData" if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds else "no pixel data"
            raise UnreadableImage(f"not an image ({kind}; SOP class {getattr(ds.get('SOPClassUID'), 'name', 'unknown')})")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise UnreadableImage(f"multi-frame ({frames} frames); only single-frame images are read")
        photometric = str(ds.get("PhotometricInterpretation", ""))
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise UnreadableImage(f"PhotometricInterpretation {photometric or 'missing'}; only MONOCHROME1/2 are read")
        pixels = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0))
        if pixels > MAX_PIXELS:
            raise UnreadableImage(f"{pixels:,} pixels is over the limit of {MAX_PIXELS:,}")
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        try:
            stored = ds.pixel_array
        except Exception as error:  # pydicom raises several types for missing decoders and bad data
            name = getattr(syntax, "name", None) or str(syntax or "unknown")
            hint = "; compressed syntaxes need `pip install ganzoo[dicom]`" if syntax is not None and syntax.is_compressed else ""
            raise UnreadableImage(f"pixel data in transfer syntax {name} cannot be decoded ({type(error).__name__}){hint}") from None
        if stored.ndim != 2:
            raise UnreadableImage(f"pixel array of shape {tuple(stored.shape)}; only one 2-D frame is read")
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    unit = voi(values, ds, window)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return np.ascontiguousarray((unit * TOP).round().astype(np.uint16)), ds


def voi(values: np.ndarray, ds: "object", window: tuple[float, float] | str | None) -> np.ndarray:
    """Modality values -> [0, 1]: `--window` if given, else the VOI LUT sequence, else the first
    Window Center/Width (with its VOI LUT Function), else auto."""
    if window == "auto":
        return auto_window(values)
    if window is not None:
        return linear_window(values, *window)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        return lut(values, ds.VOILUTSequence[0])
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = first(ds.WindowCenter), first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        if not width > 0:
            raise UnreadableImage(f"WindowWidth {width:g} is not > 0; use --window CENTER,WIDTH or --window auto")
        if function == "SIGMOID":
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        if function == "LINEAR_EXACT":
            return np.clip((values - center) / width + 0.5, 0.0, 1.0)
        return linear_window(values, center, width)
    return auto_window(values)


def first(value: "object") -> float:
    """The first of a multi-valued attribute (Window Center/Width may list several)."""
    try:
        return float(value[0])  # type: ignore[index]
    except TypeError:
        return float(value)  # type: ignore[arg-type]


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The standard's LINEAR VOI function (PS3.3 C.11.2.1.2.1), to [0, 1]."""
    return np.clip((values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)


def auto_window(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, AUTO_PERCENTILES)
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)


def lut(values: np.ndarray, item: "object") -> np.ndarray:
    """A VOI LUT sequence item: values below/above the first/last entry take its first/last output."""
    entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
    data = item.LUTData
    table = np.frombuffer(data, dtype="<u2") if isinstance(data, bytes) else np.asarray(data if isinstance(data, (list, tuple)) or hasattr(data, "__len__") else [data])
    entries = entries or 65536
    index = np.clip(np.round(values - first_mapped), 0, min(entries, len(table)) - 1).astype(np.int64)
    return table.astype(np.float64)[index] / float(2**bits - 1)
