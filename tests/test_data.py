import os

import cv2
import numpy as np
import pytest
import torch

import ganzoo_datasets.folder as folder_mod
from ganzoo.data import DatasetOptions, Preprocessing, load_dataset, read_grayscale, to_model_input
from ganzoo.errors import DataError


def opts(path, **kwargs):
    prep = kwargs.pop("prep", Preprocessing(resolution=32))
    return DatasetOptions(path=str(path), preprocessing=prep, **kwargs)


def test_folder_with_class_subfolders_and_label(image_folder):
    everything = load_dataset("folder", opts(image_folder))
    assert everything.images.shape == (24, 1, 32, 32) and everything.images.dtype == torch.uint8
    only_a = load_dataset("folder", opts(image_folder, label="a"))
    assert len(only_a) == 12 and set(only_a.labels) == {"a"}
    assert only_a.fingerprint != everything.fingerprint


def test_several_labels_without_label_is_one_warning(image_folder, tmp_path, caplog):
    """--data with two classes and no --label trained on both mixed, silently."""
    with caplog.at_level("WARNING", logger="ganzoo"):
        load_dataset("folder", opts(image_folder))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{image_folder} holds 2 classes (a: 12, b: 12) and no --label was given: they are used mixed together; "
        "pass --label a to use one class"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="ganzoo"):
        load_dataset("folder", opts(image_folder, label="a"))
        load_dataset("folder", opts(image_folder / "b"))  # one class, flat: nothing to say
    assert not caplog.records


def test_label_that_matches_nothing_lists_labels(image_folder):
    with pytest.raises(DataError, match="no image .* has label 'c'; labels there: a, b"):
        load_dataset("folder", opts(image_folder, label="c"))


def test_images_cap_is_a_seeded_subset(image_folder):
    a = load_dataset("folder", opts(image_folder, max_images=5, seed=1))
    b = load_dataset("folder", opts(image_folder, max_images=5, seed=1))
    c = load_dataset("folder", opts(image_folder, max_images=5, seed=2))
    assert len(a) == 5 and a.files == b.files and a.files != c.files


def test_metadata_csv_labels(tmp_path, image_folder):
    root = tmp_path / "flat"
    root.mkdir()
    rows = ["file,label"]
    for i, src in enumerate(sorted(image_folder.rglob("*.png"))):
        name = f"img{i}.png"
        (root / name).write_bytes(src.read_bytes())
        rows.append(f"{name},{'covid' if i % 3 == 0 else 'normal'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    covid = load_dataset("folder", opts(root, label="covid"))
    assert len(covid) == 8 and set(covid.labels) == {"covid"}


def test_metadata_missing_columns(tmp_path, image_folder):
    (image_folder / "metadata.csv").write_text("path,class\nx.png,a\n")
    with pytest.raises(DataError, match="lacks column"):
        load_dataset("folder", opts(image_folder))


def flat_folder_with_metadata(root, image_folder, names):
    """`names` as metadata.csv rows (label 'x'), each a copy of one of the fixture's PNGs."""
    root.mkdir(exist_ok=True)
    png = next(image_folder.rglob("*.png")).read_bytes()
    for name in names:
        inside = os.path.normpath(name)
        if not os.path.isabs(name) and not inside.startswith(".."):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / inside).write_bytes(png)
    (root / "metadata.csv").write_text("file,label\n" + "".join(f"{name},x\n" for name in names))
    return png


def test_metadata_names_stay_inside_the_data_folder(tmp_path, image_folder):
    root = tmp_path / "data"
    png = flat_folder_with_metadata(root, image_folder, ["ok.png", "../outside.png"])
    (tmp_path / "outside.png").write_bytes(png)  # a valid image, so only the refusal keeps it out
    with pytest.raises(DataError, match=r"metadata.csv row 3: '\.\./outside.png' resolves outside .*data; refused"):
        load_dataset("folder", opts(root))

    flat_folder_with_metadata(root, image_folder, ["ok.png", "sub/../../outside.png"])
    with pytest.raises(DataError, match=r"row 3: 'sub/\.\./\.\./outside.png' resolves outside"):
        load_dataset("folder", opts(root))

    flat_folder_with_metadata(root, image_folder, [str(tmp_path / "outside.png")])
    with pytest.raises(DataError, match=r"row 2: '/.*outside.png' is an absolute path; .* refused"):
        load_dataset("folder", opts(root))


def test_metadata_symlink_out_of_the_data_folder_is_refused(tmp_path, image_folder):
    root = tmp_path / "data"
    png = flat_folder_with_metadata(root, image_folder, ["ok.png", "link.png"])
    (tmp_path / "outside.png").write_bytes(png)
    (root / "link.png").unlink()
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(DataError, match="row 3: 'link.png' resolves outside"):
        load_dataset("folder", opts(root))


def test_metadata_nested_names_inside_the_folder_work(tmp_path, image_folder):
    root = tmp_path / "data"
    flat_folder_with_metadata(root, image_folder, ["a/b/one.png", "a/./two.png", "a/c/../three.png"])
    data = load_dataset("folder", opts(root))
    assert len(data) == 3 and sorted(data.files) == ["a/b/one.png", "a/c/../three.png", "a/two.png"] and data.skipped == 0


def test_bad_files_are_skipped_with_a_count(image_folder, caplog):
    good = next(image_folder.rglob("*.png")).read_bytes()
    (image_folder / "a" / "zero.png").write_bytes(b"")
    (image_folder / "a" / "text.png").write_text("not an image")
    (image_folder / "a" / "truncated.png").write_bytes(good[: len(good) // 3])
    with caplog.at_level("WARNING", logger="ganzoo"):
        data = load_dataset("folder", opts(image_folder))
    assert len(data) == 24 and data.skipped == 3
    assert "skipped 3 unreadable file(s)" in caplog.text


def test_skip_messages_say_why(image_folder, caplog):
    (image_folder / "a" / "zero.png").write_bytes(b"")
    (image_folder / "a" / "text.png").write_text("not an image")
    cv2.imwrite(str(image_folder / "a" / "huge.png"), np.zeros((10_050, 10_000), np.uint8))
    with caplog.at_level("WARNING", logger="ganzoo"):
        load_dataset("folder", opts(image_folder))
    assert "zero.png: empty file (0 bytes)" in caplog.text
    assert "text.png: not a decodable PNG/JPEG" in caplog.text
    assert "huge.png: 100,500,000 pixels is over the limit of 100,000,000" in caplog.text


def test_no_usable_image_is_one_clear_error(tmp_path):
    broken, empty = tmp_path / "broken", tmp_path / "empty"
    broken.mkdir()
    empty.mkdir()
    (broken / "x.png").write_text("nope")
    with pytest.raises(DataError, match=f"no usable image in {broken}"):
        load_dataset("folder", opts(broken))
    with pytest.raises(DataError, match="no image files"):
        load_dataset("folder", opts(empty))
    with pytest.raises(DataError, match="data directory not found"):
        load_dataset("folder", opts(tmp_path / "missing"))


def test_16_bit_and_rgba_are_converted_not_garbled(tmp_path):
    ramp16 = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), ramp16)
    gray = read_grayscale(tmp_path / "deep.png")
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray.ravel().astype(int)) >= 0)  # still a monotone ramp
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:8, :, 3] = 255  # top half opaque, bottom half transparent
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    gray = read_grayscale(tmp_path / "alpha.png")
    assert gray.shape == (16, 16) and gray[:8].min() == 200 and gray[8:].max() == 0


def test_clahe_changes_the_images(image_folder):
    on = load_dataset("folder", opts(image_folder, prep=Preprocessing(resolution=32, clahe=True)))
    off = load_dataset("folder", opts(image_folder, prep=Preprocessing(resolution=32, clahe=False)))
    assert not torch.equal(on.images, off.images)


def test_second_load_comes_from_the_cache(image_folder, monkeypatch):
    first = load_dataset("folder", opts(image_folder))

    def no_decoding(path):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(folder_mod, "decode_grayscale", no_decoding)
    second = load_dataset("folder", opts(image_folder))
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint
    # Changing a file's content changes the key: it is decoded again.
    monkeypatch.undo()
    victim = next((image_folder / "a").glob("*.png"))
    cv2.imwrite(str(victim), np.full((40, 40), 255, np.uint8))
    third = load_dataset("folder", opts(image_folder))
    assert third.fingerprint != first.fingerprint


def test_model_input_scaling_and_channels():
    batch = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    x = to_model_input(batch, channels=3)
    assert x.shape == (2, 3, 1, 1) and x.min() == -1 and x.max() == 1
    y = to_model_input(batch, channels=1, normalize="torch", mean_std=(0.5, 0.25))
    assert y.flatten().tolist() == pytest.approx([-2.0, 2.0])


def test_synthetic_cxr_default_dataset():
    data = load_dataset("synthetic-cxr", DatasetOptions(max_images=8, preprocessing=Preprocessing(resolution=64), label="covid"))
    again = load_dataset("synthetic-cxr", DatasetOptions(max_images=8, preprocessing=Preprocessing(resolution=64), label="covid"))
    assert data.images.shape == (8, 1, 64, 64) and set(data.labels) == {"covid"}
    assert data.fingerprint == again.fingerprint
    assert data.images.float().std() > 20


def test_real_cxr_covid(cxr_dir):
    data = load_dataset("folder", DatasetOptions(path=str(cxr_dir), label="covid", max_images=16, preprocessing=Preprocessing(resolution=64)))
    assert data.images.shape == (16, 1, 64, 64) and set(data.labels) == {"covid"} and data.skipped == 0
