"""DICOM files made here with pydicom for the tests, each carrying planted identifying values."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

# Values that must never leave the dataset: the privacy scan looks for each in every file a run writes.
PLANTED = {
    "PatientName": "Qwertzuiop^Xanthippe",
    "PatientID": "PID-86753091-XQ",
    "PatientBirthDate": "19230417",
    "StudyDate": "20190321",
    "AccessionNumber": "ACC55501234",
    "InstitutionName": "Secretville General",
    "ReferringPhysicianName": "Doctor^Zzyzx",
}


def make_dicom(
    path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 16, slope: float | None = None,
    intercept: float | None = None, window: tuple[float, float] | None = None, voi_lut: tuple[int, int, np.ndarray] | None = None,
    patient_id: str = PLANTED["PatientID"], frames: int = 1, pixel_data: bool = True, function: str | None = None,
) -> Path:
    """One uncompressed DICOM; `pixels` (H, W) or (frames, H, W) of stored values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    for name, value in PLANTED.items():
        setattr(ds, name, value)
    ds.PatientID = patient_id
    ds.Modality = "DX"
    if pixel_data:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
        if frames > 1:
            ds.NumberOfFrames = frames
        if slope is not None:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = [window[0], window[0] + 100], [window[1], window[1] * 2]  # the first value counts
        if function is not None:
            ds.VOILUTFunction = function
        if voi_lut is not None:
            first, bits, table = voi_lut
            item = Dataset()
            item.LUTDescriptor = [len(table), first, bits]
            item.LUTData = np.asarray(table, dtype="<u2").tobytes()
            ds.VOILUTSequence = Sequence([item])
        ds.PixelData = np.ascontiguousarray(pixels.astype("<u2")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def chest(seed: int, size: int = 72, top: int = 4095) -> np.ndarray:
    """A crude 12-bit chest-like image: two darker lungs in a brighter body."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    body = 0.6 + 0.1 * rng.random((size, size))
    lungs = ((x - 0.3) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.08 < 1) | ((x - 0.7) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.08 < 1)
    return ((body - 0.4 * lungs) * top).clip(0, top).astype(np.uint16)


def make_jpeg_dicom(path: Path, pixels: np.ndarray, quality: int = 90, window: tuple[float, float] | None = None) -> Path:
    """A JPEG Baseline (1.2.840.10008.1.2.4.50) DICOM of uint8 `pixels` (H, W), made without a DICOM
    JPEG encoder: OpenCV writes a baseline (SOF0, Huffman, 8-bit, one component) JPEG and pydicom
    encapsulates it as the one frame of a MONOCHROME2 image."""
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, 0])
    jpeg = encoded.tobytes()
    assert ok and jpeg[:2] == b"\xff\xd8" and b"\xff\xc0" in jpeg and b"\xff\xc2" not in jpeg  # baseline, not progressive
    make_dicom(path, pixels, pixel_data=False, window=None)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path
