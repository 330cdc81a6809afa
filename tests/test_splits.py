"""Held-out splits: drawn once (`ganzoo split`), trained on the train part, scored on the held-out part."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import ganzoo.cli
from ganzoo.api import (
    SPLIT_FILE,
    DataError,
    TrainConfig,
    DatasetOptions,
    Metric,
    MetricContext,
    Preprocessing,
    hookimpl,
    load_dataset,
    read_config,
    read_config_file,
    read_split,
    real_baseline,
    real_images_for,
    train,
)
from ganzoo.plugins import register_plugin, unregister_plugin
from ganzoo.splits import draw_split
from tiny import tiny_config


def run_cli(args: list[str]) -> str:
    result = CliRunner().invoke(ganzoo.cli.build_app(), args)
    assert result.exit_code == 0, result.output
    return result.output


def test_draw_split_is_stratified_grouped_and_seeded():
    labels = ["a"] * 60 + ["b"] * 20 + ["c"] * 2
    groups = [f"p{i // 3}" for i in range(60)] + [""] * 22  # "a" in patients of 3 images; the rest ungrouped
    sides = draw_split(labels, groups, 0.25, seed=0)
    counts = Counter(zip(labels, sides))
    assert 12 <= counts["a", "holdout"] <= 18 and counts["b", "holdout"] == 5
    assert counts["c", "holdout"] == 1 and counts["c", "train"] == 1  # a tiny class keeps one image on each side
    for patient in {g for g in groups if g}:
        assert len({sides[i] for i, g in enumerate(groups) if g == patient}) == 1
    assert sides == draw_split(labels, groups, 0.25, seed=0) and sides != draw_split(labels, groups, 0.25, seed=1)
    with pytest.raises(DataError, match="fraction in"):
        draw_split(labels, groups, 1.5, seed=0)


def test_split_command_then_train_on_the_train_part_and_score_on_the_held_out_part(tmp_path, cxr_dir):
    split = tmp_path / "split.json"
    output = " ".join(run_cli(["split", str(cxr_dir), "--out", str(split), "--group-by", "original"]).split())
    assert "123 of 615 images held out" in output and f"--split {split}" in output and "mixed" not in output
    sides = read_split(split)
    assert len(sides) == 615 and 0.18 < list(sides.values()).count("holdout") / 615 < 0.22
    recorded = json.loads(split.read_text())
    assert recorded["group_by"] == "original" and recorded["counts"]["covid"]["holdout"] + recorded["counts"]["covid"]["train"] == 426

    checkpoint = train(tiny_config(tmp_path / "run", data=str(cxr_dir), label="covid", split=str(split), images=None), quiet=True)
    config = read_config(checkpoint)
    assert config["dataset"]["part"] == "train" and config["dataset"]["images"] == recorded["counts"]["covid"]["train"]
    assert config["dataset"]["split"]["file"] == str(split)

    held_out = real_images_for(config)
    assert held_out.part == "holdout" and len(held_out) == recorded["counts"]["covid"]["holdout"]
    assert all(sides[f] == "holdout" for f in held_out.files)
    training = real_images_for(config, part="train")
    assert training.part == "train" and not set(training.files) & set(held_out.files)


def test_a_split_file_in_the_data_folder_is_found_and_a_changed_folder_is_refused(tmp_path, image_folder):
    run_cli(["split", str(image_folder), "--holdout", "0.25"])
    assert (image_folder / SPLIT_FILE).is_file()
    options = DatasetOptions(path=str(image_folder), preprocessing=Preprocessing(resolution=16, clahe=False))
    every = load_dataset("folder", options)
    train_part = load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "train"}))
    assert every.part == "all" and len(every) == 24 and train_part.part == "train" and len(train_part) == 18
    assert train_part.fingerprint != every.fingerprint
    assert len(load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "train", "split": "none"}))) == 24
    # --images N counts images of the part: 10 of the 18 training images, seeded
    ten = [load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "train", "max_images": 10, "seed": s})) for s in (0, 0, 1)]
    assert [len(d) for d in ten] == [10, 10, 10] and {d.part for d in ten} == {"train"} and set(ten[0].files) <= set(train_part.files)
    assert ten[0].files == ten[1].files and ten[0].files != ten[2].files

    result = CliRunner().invoke(ganzoo.cli.build_app(), ["split", str(image_folder)])
    assert result.exit_code == 2 and "exists" in result.output and "--overwrite" in result.output

    new = image_folder / "a" / "late-arrival.png"
    new.write_bytes((image_folder / "a").glob("*.png").__next__().read_bytes())
    with pytest.raises(DataError, match=r"not in .*ganzoo-split.json \(e\.g\. a/late-arrival\.png\): the data changed"):
        load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "train"}))


def test_without_a_split_scores_use_every_image_and_say_they_include_the_training_images(tmp_path, image_folder, caplog):
    checkpoint = train(tiny_config(tmp_path / "run", data=str(image_folder), images=None), quiet=True)
    config = read_config(checkpoint)
    assert config["dataset"]["part"] == "all" and config["dataset"]["split"] is None
    real = real_images_for(config)
    assert real.part == "all" and "no held-out split" in caplog.text and "training images among them" in caplog.text
    with pytest.raises(DataError, match="has no held-out part: draw one with: ganzoo split"):
        real_images_for(config, part="holdout")


class HeldOutSize(Metric):
    """The number of real images scored against: shows which set --eval-every used."""

    def compute(self, fake: torch.Tensor, real: Any, context: Any) -> dict[str, Any]:
        return {"value": float(len(real))}


def test_eval_every_scores_on_the_held_out_part_and_records_which(tmp_path, image_folder):
    @hookimpl
    def ganzoo_register_metrics(register):
        register("held-out-size", HeldOutSize())

    run_cli(["split", str(image_folder), "--holdout", "0.25"])
    register_plugin(SimpleNamespace(ganzoo_register_metrics=ganzoo_register_metrics), name="held-out-size-plugin")
    try:
        train(tiny_config(tmp_path / "run", data=str(image_folder), eval_every=1, eval_metric="held-out-size", eval_n=4, steps=1, images=None), quiet=True)
    finally:
        unregister_plugin("held-out-size-plugin")
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    scored = [r for r in records if "held-out-size" in r]
    assert scored and scored[-1]["held-out-size"] == 6.0 and scored[-1]["held-out-size_real"]["part"] == "holdout"
    best = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert Path(tmp_path / "run" / "best").is_dir() and best["dataset"]["part"] == "train"


def test_the_floor_scores_training_images_against_the_held_out_part(tmp_path, image_folder):
    run_cli(["split", str(image_folder), "--holdout", "0.25"])
    options = DatasetOptions(path=str(image_folder), preprocessing=Preprocessing(resolution=16, clahe=False))
    held_out = load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "holdout"}))
    training = load_dataset("folder", DatasetOptions(**{**options.__dict__, "part": "train"}))
    metric = {"held-out-size": HeldOutSize()}
    context = MetricContext(torch.device("cpu"), seed=0)
    floor = real_baseline(held_out, metric, 10, context, stand_in=training)["held-out-size"]
    assert floor["n_real_held_out"] == 10 and floor["n_real"] == floor["value"] == len(held_out) == 6
    assert floor["floor"] == "training images vs these"
    halves = real_baseline(held_out, metric, 10, context)["held-out-size"]
    assert halves["n_real_held_out"] == 3 and halves["value"] == 3.0 and halves["floor"] == "two disjoint parts of these"


def test_the_recipes_run_unchanged_from_the_repository_root(cxr_dir, monkeypatch):
    """Each examples/recipes/*.toml is a valid `ganzoo train --config` whose split fits the shared X-rays."""
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    recipes = sorted((repo / "examples" / "recipes").glob("*.toml"))
    assert recipes
    for recipe in recipes:
        config = TrainConfig.from_dict(read_config_file(recipe))
        assert Path(config.data).resolve() == cxr_dir.resolve() and config.split
        options = DatasetOptions(path=config.data, label=config.label, preprocessing=Preprocessing(resolution=config.res), part="train", split=config.split)
        assert len(load_dataset("folder", options)) == json.loads(Path(config.split).read_text())["counts"][config.label]["train"]
