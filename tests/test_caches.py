"""The caches a user can see and trust: cached loads repeat what the first load said, entries
are written atomically (also by two processes at once), `ganzoo cache info/clear` list and
remove them, and the size bound evicts the least recently used entry, never one in use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ganzoo.cli
from ganzoo import cache_entries, caches
from ganzoo.data import DatasetOptions, Preprocessing, load_dataset
from ganzoo.errors import GanzooError
from ganzoo.evaluation import FeatureExtractor

REPO = Path(__file__).resolve().parents[1]
BAD_FILES = ("zero.png", "truncated.png", "text.png")


@pytest.fixture
def folder_with_bad_files(image_folder: Path) -> Path:
    """24 good images and 3 broken files: empty, truncated PNG, text."""
    good = next(image_folder.rglob("*.png")).read_bytes()
    (image_folder / "a" / "zero.png").write_bytes(b"")
    (image_folder / "a" / "truncated.png").write_bytes(good[: len(good) // 3])
    (image_folder / "a" / "text.png").write_text("not an image")
    return image_folder


@pytest.fixture(autouse=True)
def no_pins():
    yield
    cache_entries.release_pins()


def cli(*args: str) -> str:
    result = CliRunner().invoke(ganzoo.cli.build_app(), list(args))
    assert result.exit_code == 0, result.output
    return result.output


def put(kind: str, key: str, data: bytes = b"x" * 1000, description: str = "test entry") -> Path:
    with caches.write_entry(kind, key, description, {"n": len(data)}) as tmp:
        tmp.write_bytes(data)
    return cache_entries.entry_path(kind, key)


def age(kind: str, key: str, days: float) -> None:
    """Pretend an entry was last used `days` ago."""
    record = cache_entries.record_path(cache_entries.entry_path(kind, key))
    then = time.time() - days * 86400
    os.utime(record, (then, then))


# -- the skip report -------------------------------------------------------------------------------


def test_training_twice_reports_the_skipped_files_both_times(folder_with_bad_files: Path, tmp_path: Path) -> None:
    outputs = []
    for run in ("first", "second"):
        outputs.append(cli(
            "train", "--data", str(folder_with_bad_files), "--res", "64", "--steps", "1", "--batch-size", "4",
            "--out", str(tmp_path / run), "--device", "cpu",
        ))
    for output in outputs:
        flat = " ".join(output.split())  # the console wraps long lines
        for name in BAD_FILES:
            assert f"{name}:" in flat, output
        assert "zero.png: empty file (0 bytes)" in flat and "text.png: not a decodable PNG/JPEG" in flat
        assert "skipped 3 unreadable file(s)" in flat
        assert "on 24 images" in flat
    (entry,) = cache_entries.entries("datasets")
    key = entry.key
    first, second = (" ".join(o.split()) for o in outputs)
    assert f"decoded 24 images of {folder_with_bad_files} into the dataset cache (key {key})" in first
    assert f"loaded 24 images of {folder_with_bad_files} from the dataset cache (key {key}; 3 file(s) skipped, listed above)" in second
    assert "from the dataset cache" not in first


def test_a_cached_load_keeps_the_skipped_files_and_their_reasons(folder_with_bad_files: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = DatasetOptions(path=str(folder_with_bad_files), preprocessing=Preprocessing(resolution=32))
    first = load_dataset("folder", options)
    caplog.clear()
    with caplog.at_level("INFO", logger="ganzoo"):
        second = load_dataset("folder", options)
    assert second.skipped_files == first.skipped_files and set(first.skipped_files) == {f"a/{n}" for n in BAD_FILES}
    assert torch.equal(first.images, second.images) and second.source == str(folder_with_bad_files)
    assert caplog.text.count("skipping ") == 3 and "from the dataset cache" in caplog.text
    (entry,) = cache_entries.entries("datasets")
    assert str(folder_with_bad_files) in entry.description and first.fingerprint in entry.description
    assert "32x32" in entry.description and "CLAHE" in entry.description and entry.details["skipped"] == 3


class PixelFeatures(FeatureExtractor):
    """A cheap feature space (the first 8 pixels), so the real-feature cache is tested without Inception."""

    def identity(self) -> str:
        return "pixels/8"

    def describe(self) -> dict:
        return {"extractor": "pixels"}

    def extract(self, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
        return images.float().flatten(1)[:, :8]


def test_cached_real_features_say_which_set_and_how_many(image_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ganzoo_metrics import features

    real = load_dataset("folder", DatasetOptions(path=str(image_folder), preprocessing=Preprocessing(resolution=16)))
    which = f"{image_folder} (24 images, 16x16, fingerprint {real.fingerprint})"
    with caplog.at_level("INFO", logger="ganzoo"):
        for fresh_process in range(2):
            features.forget_rows()
            features._ANNOUNCED.clear()
            caplog.clear()
            values, cached = features.cached_features(real, PixelFeatures(), torch.device("cpu"))
            assert cached is bool(fresh_process) and values.shape == (24, 8)
            (entry,) = cache_entries.entries("features")
            said = f"extracted real features of {which} into" if not cached else f"real features of {which} from the feature cache (key {entry.key})"
            assert said in caplog.text
    assert entry.description.startswith(which) and "pixels features (24, 8)" in entry.description


# -- info and clear ---------------------------------------------------------------------------------


def test_cache_info_lists_each_cache_and_its_entries(image_folder: Path, ganzoo_home: Path) -> None:
    load_dataset("folder", DatasetOptions(path=str(image_folder), preprocessing=Preprocessing(resolution=16)))
    put("features", "real-abc.safetensors", b"f" * 5000, "real features of something")
    output = cli("cache", "info")
    assert str(ganzoo_home / "cache") in output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") > 3}
    assert set(cache_entries.KINDS) <= set(rows)
    assert rows["datasets"].split("│")[2].strip() == "1" and rows["features"].split("│")[2].strip() == "1"
    assert rows["weights"].split("│")[2].strip() == "0" and "5.0 kB" in rows["features"]
    assert "real features of something" not in output
    lines = [line for line in cli("cache", "info", "--verbose").splitlines() if line.startswith(("datasets ", "features "))]
    assert len(lines) == 2 and "real-abc.safetensors" in lines[1] and "real features of something" in lines[1]
    assert str(image_folder) in lines[0] and "16x16" in lines[0] and "24 images" in lines[0]


def test_clear_by_kind_and_by_age(ganzoo_home: Path) -> None:
    for key in ("old", "new"):
        put("datasets", key)
        put("features", key)
    put("weights", "w.safetensors")
    age("datasets", "old", 10)
    age("features", "old", 10)
    age("weights", "w.safetensors", 100)

    out = cli("cache", "clear", "datasets", "--older-than", "5")
    assert "datasets: removed 1 entry" in out
    assert [e.key for e in cache_entries.entries("datasets")] == ["new"]
    assert {e.key for e in cache_entries.entries("features")} == {"old", "new"}

    out = cli("cache", "clear")  # everything but the converted weights
    assert not cache_entries.entries("datasets") and not cache_entries.entries("features")
    assert [e.key for e in cache_entries.entries("weights")] == ["w.safetensors"]
    assert "converted weights were kept" in out
    cli("cache", "clear", "weights")
    assert not cache_entries.entries("weights") and not list((ganzoo_home / "cache" / "weights").glob("w.*"))


def test_clear_removes_leftovers_but_not_a_running_write(ganzoo_home: Path) -> None:
    root = ganzoo_home / "cache" / "datasets"
    put("datasets", "kept")
    legacy = root / "0123.safetensors"  # an older layout: no record
    legacy.write_bytes(b"old")
    dead = root / f".x{caches.TEMP_MARK}999999999-00"  # an interrupted write of a process that is gone
    running = root / f".y{caches.TEMP_MARK}{os.getpid()}-00"
    for path in (legacy, dead, running):
        path.write_bytes(b"z" * 10)
        os.utime(path, (time.time() - 7200,) * 2)
    assert set(caches.leftovers("datasets")) == {legacy, dead}
    result = caches.clear(["datasets"], older_than_days=0.01)  # the entry is too recent: only leftovers go
    assert result.leftover_bytes == 20 and running.exists() and not legacy.exists() and not dead.exists()
    assert [e.key for e in cache_entries.entries("datasets")] == ["kept"]


def test_an_unknown_cache_is_one_line_error() -> None:
    result = CliRunner().invoke(ganzoo.cli.build_app(), ["cache", "clear", "everything"])
    assert result.exit_code == 2 and "unknown cache 'everything'" in result.output and "hub-pulls" in result.output


# -- the size bound and entries in use -----------------------------------------------------------------


def test_size_bound_evicts_least_recently_used_never_one_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for i, key in enumerate(("a", "b", "c")):
        put("datasets", key, b"x" * 4000)
        age("datasets", key, 3 - i)  # a is the least recently used
    put("weights", "w.safetensors", b"w" * 50_000)  # not counted, never evicted
    with cache_entries.open_entry("datasets", "a") as held:  # reading "a" now: in use (and used now)
        assert held is not None
        age("datasets", "a", 5)
        monkeypatch.setenv(caches.MAX_GB_ENV, str(9000 / 1e9))
        evicted = caches.enforce_size_bound()
        assert [e.key for e in evicted] == ["b"]
        assert [e.key for e in cache_entries.entries("datasets")] == ["a", "c"]
    monkeypatch.setenv(caches.MAX_GB_ENV, str(5000 / 1e9))
    evicted = caches.enforce_size_bound()  # "a" is free again and the least recently used
    assert [e.key for e in evicted] == ["a"] and [e.key for e in cache_entries.entries("weights")] == ["w.safetensors"]


def test_writing_enforces_the_bound_and_keeps_the_new_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(caches.MAX_GB_ENV, str(5000 / 1e9))
    put("features", "one", b"1" * 4000)
    put("features", "two", b"2" * 4000)
    assert [e.key for e in cache_entries.entries("features")] == ["two"]
    monkeypatch.setenv(caches.MAX_GB_ENV, "lots")
    with pytest.raises(GanzooError, match="GANZOO_CACHE_MAX_GB must be a number"):
        caches.size_bound()


def test_a_pinned_entry_survives_clear_until_released() -> None:
    put("hub-pulls", "hub/model/1")
    assert cache_entries.pin_entry("hub-pulls", "hub/model/1") is not None
    result = caches.clear(["hub-pulls"])
    assert not result.removed and [e.key for e in result.in_use] == ["hub/model/1"]
    cache_entries.release_pins()
    assert [e.key for e in caches.clear(["hub-pulls"]).removed] == ["hub/model/1"]


def test_a_failed_write_leaves_nothing_and_readers_ignore_uncommitted_payloads(ganzoo_home: Path) -> None:
    with pytest.raises(RuntimeError):
        with caches.write_entry("datasets", "k", "never") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not [p for p in (ganzoo_home / "cache" / "datasets").iterdir() if p.name != ".lock"]
    (ganzoo_home / "cache" / "datasets" / "k").write_bytes(b"payload without a record")
    with cache_entries.open_entry("datasets", "k") as entry:
        assert entry is None
    put("datasets", "k", b"complete")  # the stray payload is replaced on commit
    with cache_entries.open_entry("datasets", "k") as entry:
        assert entry is not None and entry.path.read_bytes() == b"complete"


# -- two processes filling the same entry -----------------------------------------------------------------


FILLER = """
import os, sys, time
from pathlib import Path
import ganzoo.data as data
from ganzoo.data import DatasetOptions, Preprocessing, load_dataset
from ganzoo.errors import GanzooError
from ganzoo.evaluation import FeatureExtractor

barrier = Path(sys.argv[2])
(barrier / f"ready-{sys.argv[3]}").touch()
while len(list(barrier.glob("ready-*"))) < 2:
    time.sleep(0.01)
save = data.save_file
def slow_save(tensors, path):  # both processes are writing at the same time
    time.sleep(0.5)
    save(tensors, path)
data.save_file = slow_save
images = load_dataset("folder", DatasetOptions(path=sys.argv[1], preprocessing=Preprocessing(resolution=16))).images
print(len(images), int(images.sum()))
"""


def test_two_processes_fill_the_same_entry_at_once(folder_with_bad_files: Path, ganzoo_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")])}
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", FILLER, str(folder_with_bad_files), str(barrier), str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    seen = set()
    while any(p.poll() is None for p in procs):  # meanwhile, a reader never sees half an entry
        for entry in cache_entries.entries("datasets"):
            with cache_entries.open_entry("datasets", entry.key) as held:
                if held is not None:
                    seen.add(len(load_dataset_from(held.path)))
        time.sleep(0.01)
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert {out.split()[0] for out, _ in results} == {"24"} and len({out for out, _ in results}) == 1
    assert seen <= {24}
    (entry,) = cache_entries.entries("datasets")
    assert len(load_dataset_from(entry.path)) == 24 and not caches.leftovers("datasets")
    assert not [p for p in entry.path.parent.iterdir() if caches.TEMP_MARK in p.name]


def load_dataset_from(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path / "images.safetensors"))["images"]
