"""The `dicom` dataset (VOI, MONOCHROME1, rescale, skips), 16-bit preprocessing, provenance of
generated images and the privacy scan: no planted patient value in any file a run writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

import ganzoo.cli
from dicom_files import PLANTED, chest, make_dicom, make_jpeg_dicom
from ganzoo.api import (
    SPLIT_FILE, DataError, DatasetOptions, Preprocessing, UnreadableImage, decode_grayscale, load_dataset, preprocess, read_split,
    reduce_to_uint8, registry,
)
from ganzoo_dicom.pixels import TOP, read_dicom


def test_the_dicom_dataset_is_a_built_in_plugin():
    assert registry("datasets").entry("dicom").plugin == "dicom"


def opts(path, **kwargs):
    return DatasetOptions(path=str(path), preprocessing=kwargs.pop("prep", Preprocessing(resolution=32, clahe=False)), **kwargs)


def ramp(size: int = 64, top: int = 4095) -> np.ndarray:
    return np.tile(np.linspace(0, top, size), (size, 1)).astype(np.uint16)


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    pixels = ramp()
    mono2, _ = read_dicom(make_dicom(tmp_path / "m2.dcm", pixels, window=(2048, 2000)))
    mono1, _ = read_dicom(make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1", window=(2048, 2000)))
    assert mono2.dtype == np.uint16 and mono2[0, 0] == 0 and mono2[0, -1] == TOP
    assert np.array_equal(mono1.astype(int), TOP - mono2.astype(int))


def test_rescale_slope_intercept_comes_before_the_window(tmp_path):
    stored = ramp(top=2000)
    hu = stored.astype(float) * 2 - 1024  # modality values
    rescaled, _ = read_dicom(make_dicom(tmp_path / "r.dcm", stored, slope=2, intercept=-1024, window=(40, 400)))
    expected = np.clip((hu - 39.5) / 399 + 0.5, 0, 1) * TOP
    assert np.abs(rescaled.astype(float) - expected).max() <= 1
    plain, _ = read_dicom(make_dicom(tmp_path / "p.dcm", stored, window=(40, 400)))
    assert not np.array_equal(plain, rescaled)  # without the rescale the same window gives another image


def test_voi_lut_sequence_is_used_and_window_option_overrides(tmp_path):
    pixels = ramp(top=255)
    inverted = np.arange(255, -1, -1)  # an 8-bit LUT that inverts
    path = make_dicom(tmp_path / "lut.dcm", pixels, window=(128, 256), voi_lut=(0, 8, inverted))
    with_lut, _ = read_dicom(path)
    assert with_lut[0, 0] == TOP and with_lut[0, -1] == 0
    override, _ = read_dicom(path, (127.5, 256.0))
    assert override[0, 0] < 300 and override[0, -1] > TOP - 300
    auto, _ = read_dicom(path, "auto")
    assert auto[0, 0] == 0 and auto[0, -1] == TOP


def test_12_bit_in_16_keeps_more_than_256_levels_and_sigmoid_function(tmp_path):
    image, _ = read_dicom(make_dicom(tmp_path / "12.dcm", ramp(512), bits_stored=12))
    assert len(np.unique(image)) > 256
    sigmoid, _ = read_dicom(make_dicom(tmp_path / "s.dcm", ramp(64), window=(2048, 1000), function="SIGMOID"))
    assert abs(int(sigmoid[0, 32]) - TOP // 2) < TOP * 0.05 and sigmoid[0, 0] < 500


def test_16_bit_ramp_survives_load_clahe_resize(tmp_path):
    png = tmp_path / "ramp.png"
    cv2.imwrite(str(png), np.tile(np.linspace(0, 65535, 1024), (1024, 1)).astype(np.uint16))
    gray = decode_grayscale(png, keep_depth=True)
    assert gray.dtype == np.uint16
    out = preprocess(gray, Preprocessing(resolution=512, clahe=True))
    assert out.dtype == np.uint16 and out.shape == (512, 512) and len(np.unique(out)) > 256
    assert decode_grayscale(png).dtype == np.uint8  # the 8-bit default is unchanged
    image, _ = read_dicom(make_dicom(tmp_path / "r.dcm", ramp(600, 65535)))
    assert len(np.unique(preprocess(image, Preprocessing(resolution=300, clahe=True)))) > 256


@pytest.mark.parametrize(("clip", "tiles", "crop"), [(2.0, 8, 299), (0.0, 8, 299), (4.0, 3, 250)])
def test_16_bit_clahe_limits_contrast_like_the_8_bit_clahe(cxr_dir, clip, tiles, crop):
    """OpenCV's CLAHE on uint16 clips a 65536-bin histogram (clip 2 on 37x37 tiles: 1 count per bin),
    which leaves a x257 copy of an X-ray almost as it was; ganzoo's 16-bit CLAHE matches the 8-bit one."""
    prep = Preprocessing(resolution=crop, clahe=True, clahe_clip=clip, clahe_tile=tiles)
    worst, names = 0.0, sorted((cxr_dir / "images").glob("*.png"))[:3]
    assert len(names) == 3
    for name in names:
        image8 = cv2.imread(str(name), cv2.IMREAD_GRAYSCALE)[:crop, :crop]
        reference = preprocess(image8, prep).astype(int)
        ours = reduce_to_uint8(preprocess(image8.astype(np.uint16) * 257, prep)).astype(int)
        assert np.abs(ours - reference).max() <= 1 and np.abs(ours - reference).mean() < 0.3
        opencv16 = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(image8.astype(np.uint16) * 257)
        worst = max(worst, np.abs(reduce_to_uint8(opencv16).astype(int) - reference).mean())
        smooth = np.clip(cv2.GaussianBlur(image8.astype(np.float32) * 257, (0, 0), 1.0), 0, 65535).round().astype(np.uint16)
        deep = preprocess(smooth, prep)
        assert len(np.unique(deep)) > 4096  # the depth is kept
        if clip > 0:  # the limit bounds the mapping's slope, so sub-level detail moves a pixel by < 1 level on average
            assert np.abs(reduce_to_uint8(deep).astype(int) - preprocess(reduce_to_uint8(smooth), prep)).mean() < 1
    if clip > 0:
        assert worst > 5  # what the 65536-bin clip limit did (grey levels)


def test_compressed_syntaxes_decode_like_the_uncompressed_file(tmp_path):
    from pydicom.uid import JPEG2000Lossless, RLELossless

    pixels = chest(1)
    source = make_dicom(tmp_path / "plain.dcm", pixels, bits_stored=12, window=(2048, 4096))
    plain, _ = read_dicom(source)
    for syntax in (JPEG2000Lossless, RLELossless):
        ds = pydicom.dcmread(source)
        ds.compress(syntax, encoding_plugin="pylibjpeg" if syntax == JPEG2000Lossless else "")
        target = tmp_path / f"{syntax.name}.dcm"
        ds.save_as(target)
        assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == syntax
        decoded, _ = read_dicom(target)
        assert np.array_equal(decoded, plain), syntax.name


def test_jpeg_baseline_decodes_close_to_the_original_and_without_a_decoder_is_skipped(tmp_path, monkeypatch):
    """1.2.840.10008.1.2.4.50, lossy: decoded by pylibjpeg-libjpeg alone, within JPEG's error of the
    uncompressed file; with no decoder the file is skipped with the reason, and decoded once one is back."""
    from pydicom.pixels.decoders import JPEGBaseline8BitDecoder as decoder
    from pydicom.uid import JPEGBaseline8Bit

    pixels = cv2.GaussianBlur((chest(2, size=64) >> 4).astype(np.uint8), (0, 0), 1.5)  # smooth, as X-rays are
    plain, _ = read_dicom(make_dicom(tmp_path / "plain.dcm", pixels.astype(np.uint16), bits_stored=8, window=(128, 256)))
    folder = tmp_path / "jpeg"
    folder.mkdir()
    path = make_jpeg_dicom(folder / "lossy.dcm", pixels, quality=90, window=(128, 256))
    make_dicom(folder / "other.dcm", chest(3), bits_stored=12, window=(2048, 4096))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    only_libjpeg = {"pylibjpeg": decoder._available["pylibjpeg"]}
    monkeypatch.setattr(decoder, "_available", only_libjpeg)
    decoded, _ = read_dicom(path)
    levels = np.abs(decoded.astype(float) - plain.astype(float)) / 257  # in 8-bit grey levels
    assert decoded.shape == (64, 64) and levels.mean() < 1.5 and levels.max() <= 8  # measured: 0.47 and 4
    assert np.abs(decoded.astype(float) - np.roll(plain, 6, axis=1)).mean() / 257 > 10  # a 6-pixel shift is far (21)
    monkeypatch.setattr(decoder, "_available", {})
    with pytest.raises(UnreadableImage, match=r"JPEG Baseline \(Process 1\) cannot be decoded .*pip install ganzoo\[dicom\]"):
        read_dicom(path)
    without = load_dataset("dicom", opts(folder))
    assert without.files == ["other.dcm"] and "JPEG Baseline (Process 1) cannot be decoded" in without.skipped_files["lossy.dcm"]
    monkeypatch.setattr(decoder, "_available", only_libjpeg)
    assert sorted(load_dataset("dicom", opts(folder)).files) == ["lossy.dcm", "other.dcm"]  # not the cached skip


def dicom_folder(root: Path) -> Path:
    """Two classes by subfolder, plus a corrupt, a multi-frame, a non-image and an RGB-less text file."""
    for label, offset in (("normal", 0), ("pneumonia", 10)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            make_dicom(root / label / f"{label}-{i}.dcm", chest(offset + i), photometric="MONOCHROME1" if i % 2 else "MONOCHROME2",
                       bits_stored=12, window=(2048, 4096), patient_id=f"{PLANTED['PatientID']}-{i // 2}")
    (root / "normal" / "corrupt.dcm").write_bytes(b"DICM" + bytes(range(200)))
    make_dicom(root / "normal" / "multi.dcm", np.stack([chest(0), chest(1)]), frames=2)
    make_dicom(root / "normal" / "report.dcm", chest(0), pixel_data=False)
    (root / "normal" / "notes.txt").write_text("not a dicom; ignored by extension")
    return root


def test_dataset_skips_with_reasons_and_labels_from_folders_and_csv(tmp_path):
    root = dicom_folder(tmp_path / "dcm")
    data = load_dataset("dicom", opts(root))
    assert data.images.shape == (12, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.skipped == 3
    reasons = data.skipped_files
    assert "not a readable DICOM" in reasons["normal/corrupt.dcm"]
    assert "multi-frame (2 frames)" in reasons["normal/multi.dcm"]
    assert "not an image" in reasons["normal/report.dcm"]
    only = load_dataset("dicom", opts(root, label="pneumonia"))
    assert len(only) == 6 and set(only.labels) == {"pneumonia"}
    assert len(set(only.groups)) == 3 and all(len(g) == 16 for g in only.groups)
    assert not any(PLANTED["PatientID"] in g for g in only.groups)
    (root / "metadata.csv").write_text("file,label\nnormal/normal-0.dcm,x\npneumonia/pneumonia-1.dcm,y\nnormal/multi.dcm,y\n")
    by_csv = load_dataset("dicom", opts(root, label="y"))
    assert by_csv.files == ["pneumonia/pneumonia-1.dcm"] and by_csv.skipped == 1
    with pytest.raises(DataError, match="--window must be CENTER,WIDTH"):
        load_dataset("dicom", opts(root, window="wide"))
    windowed = load_dataset("dicom", opts(root, window="auto"))
    assert not torch.equal(windowed.images, data.images)


def test_grouped_split_keeps_each_patient_on_one_side(tmp_path, ganzoo_home):
    root = dicom_folder(tmp_path / "dcm")
    output = run_cli(["split", str(root), "--dataset", "dicom", "--holdout", "0.3", "--seed", "1"])
    assert "held out" in output
    data = load_dataset("dicom", opts(root))
    sides = read_split(root / SPLIT_FILE)
    train = {data.groups[i] for i, f in enumerate(data.files) if sides[f] == "train"}
    held_out = {data.groups[i] for i, f in enumerate(data.files) if sides[f] == "holdout"}
    assert train and held_out and not train & held_out
    text = (root / SPLIT_FILE).read_text()
    assert not any(group in text for group in train | held_out)  # not even the salted hash is written
    assert set(load_dataset("dicom", opts(root, part="holdout")).groups) == held_out


def run_cli(args: list[str]) -> str:
    result = CliRunner().invoke(ganzoo.cli.build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_on_dicom_generate_dicom_train_again_and_nothing_identifying_written(tmp_path, ganzoo_home, caplog):
    root = dicom_folder(tmp_path / "dcm")
    common = ["--res", "64", "--batch-size", "4", "--steps", "2", "--device", "cpu", "--log-every", "1"]
    output = run_cli(["train", "--dataset", "dicom", "--data", str(root), "--label", "pneumonia", "--out", str(tmp_path / "run"), *common])
    output += run_cli(["split", str(root), "--dataset", "dicom", "--out", str(tmp_path / "run" / "split.json"), "--holdout", "0.34"])
    output += run_cli(["generate", str(tmp_path / "run"), "-n", "4", "--out", str(tmp_path / "synthetic"), "--format", "dicom", "--bit-depth", "16"])

    made = sorted((tmp_path / "synthetic").glob("*.dcm"))
    assert len(made) == 4
    ds = pydicom.dcmread(made[0])
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and "SYNTHETIC" in ds.SeriesDescription and ds.ConversionType == "SYN"
    assert ds.PatientName == "" and ds.PatientID == "" and ds.BitsStored == 16
    assert ds.SOPInstanceUID != pydicom.dcmread(made[1]).SOPInstanceUID
    sidecar = json.loads(made[0].with_suffix(".json").read_text())
    weights = next((tmp_path / "run").rglob("model.safetensors"))
    assert sidecar["synthetic"] is True and sidecar["index"] == 0 and sidecar["seed"] == 0
    assert sidecar["model_sha256"] == ganzoo.api.file_sha256(weights)
    back = load_dataset("dicom", opts(tmp_path / "synthetic"))
    assert len(back) == 4 and back.skipped == 0 and back.groups == [""] * 4
    output += run_cli(["train", "--dataset", "dicom", "--data", str(tmp_path / "synthetic"), "--out", str(tmp_path / "run2"), *common])

    needles = [v.encode() for v in PLANTED.values()] + [part.encode() for part in PLANTED["PatientName"].split("^")]
    written = [p for base in (tmp_path / "run", tmp_path / "run2", tmp_path / "synthetic", ganzoo_home) for p in base.rglob("*") if p.is_file()]
    assert len(written) > 10
    leaks = [(str(p), n) for p in written for n in needles if n in p.read_bytes() or n.decode() in str(p)]
    logs = output + caplog.text
    leaks += [("output", n) for n in needles if n.decode() in logs]
    assert not leaks


def test_generate_png_16_bit_with_sidecars(tmp_path):
    run_cli(["train", "--res", "64", "--images", "8", "--batch-size", "4", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "run")])
    run_cli(["generate", str(tmp_path / "run"), "-n", "2", "--out", str(tmp_path / "png16"), "--bit-depth", "16"])
    image = cv2.imread(str(tmp_path / "png16" / "sample-00000.png"), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.shape == (64, 64)
    assert json.loads((tmp_path / "png16" / "sample-00001.json").read_text())["index"] == 1
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["generate", str(tmp_path / "run"), "--bit-depth", "12", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--bit-depth must be 8 or 16" in result.output
