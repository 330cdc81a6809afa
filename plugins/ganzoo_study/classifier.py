"""Table 6: does adding synthetic images to the positive class help a classifier on real data?

The test split is the held-out part of the data's `ganzoo split` file, which the GANs did not
train on; without one it is drawn here from real images only, before any synthetic image is
looked at, and grouped by patient when the metadata names patients, so a patient's images
never sit on both sides. Synthetic images only ever join the training split.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ganzoo.api import GanzooError, Preprocessing, logger, preprocess, read_grayscale, resolve_device, split_file_for

from .classifier_metrics import METRICS, binary_metrics
from .common import fmt, markdown_table, summarize, write_csv, write_json
from .plots import confusion_plot
from .records import Record, read_records, split, split_from_file, stratified_subset, synthetic_images

MODELS = ("resnet18", "densenet121", "densenet161")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMALL_TEST = 100


def load_images(paths: Sequence[Path], res: int, clahe: bool = True) -> tuple[torch.Tensor, list[int]]:
    """uint8 (N, 1, res, res) images preprocessed as the GANs' data; and the indices that were unreadable."""
    prep = Preprocessing(resolution=res, clahe=clahe)
    images, bad = [], []
    for i, path in enumerate(paths):
        gray = read_grayscale(path)
        if gray is None:
            bad.append(i)
            continue
        images.append(preprocess(gray, prep))
    if not images:
        raise GanzooError("no readable image to classify")
    return torch.from_numpy(np.stack(images)).unsqueeze(1), bad


def build_classifier(name: str, weights: str | Path | None = None) -> nn.Module:
    """A torchvision model with 2 outputs, from scratch, or from a local safetensors file (strict)."""
    import torchvision.models as tvm

    if name not in MODELS:
        raise GanzooError(f"unknown classifier {name!r}; use one of {', '.join(MODELS)}")
    head = "fc" if name.startswith("resnet") else "classifier"
    classes = 2
    state = None
    if weights is not None:
        from safetensors.torch import load_file

        path = Path(weights).expanduser()
        if path.suffix != ".safetensors" or not path.is_file():
            raise GanzooError(f"--weights must be an existing .safetensors file (no pickle), got {path}")
        state = load_file(str(path))
        if f"{head}.weight" not in state:
            raise GanzooError(f"{path} has no {head}.weight: not {name} weights")
        classes = int(state[f"{head}.weight"].shape[0])
    model = getattr(tvm, name)(weights=None, num_classes=classes)
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise GanzooError(f"{weights} does not fit {name}: {str(error).splitlines()[0]}") from None
        if classes != 2:
            setattr(model, head, nn.Linear(getattr(model, head).in_features, 2))
    return model


def _model_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = batch.to(device).float().div(255.0).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def fit(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, epochs: int, batch_size: int, lr: float, seed: int, device: torch.device) -> nn.Module:
    """Plain Adam + cross-entropy with a seeded shuffle; horizontal flips as the only augmentation."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=rng)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on a single image
                continue
            x = _model_input(images[idx], device)
            flip = torch.rand(len(idx), generator=rng) < 0.5
            x[flip.to(device)] = x[flip.to(device)].flip(-1)
            loss = loss_fn(model(x), targets[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Probability of the positive class for each image."""
    model.eval()
    out = [torch.softmax(model(_model_input(images[i : i + batch_size], device)), 1)[:, 1].cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def classify(
    data: str | Path,
    out: str | Path,
    label_column: str = "label",
    positive: str = "covid",
    synthetic: Sequence[str | Path] = (),
    model: str = "resnet18",
    seeds: int = 3,
    epochs: int = 10,
    res: int = 64,
    batch_size: int = 32,
    lr: float = 1e-3,
    device: str = "auto",
    weights: str | Path | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_images: int | None = None,
    synthetic_n: int | None = None,
    split_file: str | Path | None = None,
) -> dict[str, Any]:
    """Train `seeds` classifiers per setting (real only; real + each synthetic set) and score them on real test images.

    Every setting uses the same real train/test split, so differences come from the added images
    and the training seeds, whose spread is reported. The test split is the held-out part of a
    `ganzoo split` file (`split_file`, else DATA/ganzoo-split.json when present; "none": no file),
    so a GAN trained on that file's train part never saw a test image; without one it is drawn
    here with `split_seed`. Images that `data` itself marks as synthetic (an augment output)
    never join the "real" setting: they form a setting of their own.
    Writes results.json, results.csv, report.md, split.csv and confusion-<setting>.png to `out`.
    """
    if seeds < 1 or epochs < 1 or batch_size < 2 or res < 16:
        raise GanzooError("classify needs seeds >= 1, epochs >= 1, batch size >= 2 and res >= 16")
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, patient_column = read_records(data, label_column)
    labels = sorted({r.label for r in records})
    if positive not in labels:
        raise GanzooError(f"no image has {label_column} {positive!r}; labels there: {', '.join(labels)}")
    if len(labels) < 2:
        raise GanzooError(f"classify needs a second class besides {positive!r}")
    marked = [r.path for r in records if r.synthetic and r.label == positive]
    records = [r for r in records if not r.synthetic]
    if max_images is not None:
        records = stratified_subset(records, positive, max_images, split_seed)
    chosen = split_file_for(str(data), None if split_file is None else str(split_file))
    if chosen is not None:
        train_idx, test_idx, how = split_from_file(records, data, chosen)
    else:
        train_idx, test_idx, how = split(records, positive, test_fraction, split_seed)
    notes = []
    train_images, bad_train = load_images([records[i].path for i in train_idx], res)
    test_images, bad_test = load_images([records[i].path for i in test_idx], res)
    train_idx = [i for k, i in enumerate(train_idx) if k not in set(bad_train)]
    test_idx = [i for k, i in enumerate(test_idx) if k not in set(bad_test)]
    if bad_train or bad_test:
        notes.append(f"{len(bad_train) + len(bad_test)} unreadable image(s) skipped")
    y_train = torch.tensor([int(records[i].label == positive) for i in train_idx])
    y_test = [int(records[i].label == positive) for i in test_idx]
    n_pos = sum(y_test)
    if n_pos == 0 or n_pos == len(y_test):
        raise GanzooError(f"the test split ({len(y_test)} images) holds only one class; use more images or a larger test fraction")
    if len(y_test) < SMALL_TEST:
        notes.append(f"small test split: {len(y_test)} images ({n_pos} {positive}); metrics move by 1/{len(y_test)} per image")
    _write_split(out / "split.csv", records, train_idx, test_idx, positive)

    settings: dict[str, list[Path]] = {"real": []}
    given = {Path(d).expanduser().resolve() for d in synthetic}
    if marked and Path(data).expanduser().resolve() not in given:
        settings[f"real+{Path(data).name}"] = marked[:synthetic_n] if synthetic_n is not None else marked
    for directory in synthetic:
        name = f"real+{Path(directory).name}"
        while name in settings:
            name += "'"
        files = synthetic_images(directory, positive)
        settings[name] = files[:synthetic_n] if synthetic_n is not None else files
    test_paths = {records[i].path.resolve() for i in test_idx}
    results: dict[str, Any] = {}
    for name, extra in settings.items():
        if test_paths & {p.resolve() for p in extra}:
            raise GanzooError(f"{name}: a synthetic file is also in the test split")
        x, y = train_images, y_train
        if extra:
            syn, bad = load_images(extra, res)
            x, y = torch.cat([x, syn]), torch.cat([y, torch.ones(len(syn), dtype=torch.long)])
            if bad:
                notes.append(f"{name}: {len(bad)} unreadable synthetic image(s) skipped")
        per_seed = []
        for seed in range(seeds):
            start = time.perf_counter()
            torch.manual_seed(seed)
            net = fit(build_classifier(model, weights), x, y, epochs, batch_size, lr, seed, dev)
            scores = binary_metrics(y_test, predict(net, test_images, dev).tolist())
            per_seed.append({"seed": seed, **scores, "seconds": time.perf_counter() - start})
            logger.info("%s seed %d: accuracy %.3f recall %.3f AUROC %s", name, seed, scores["accuracy"], scores["recall"], fmt(scores["auroc"]))
        summed = np.sum([r["confusion"] for r in per_seed], axis=0).tolist()
        confusion_plot(out / f"confusion-{_slug(name)}.png", summed, [f"not {positive}", positive], f"{name}: summed over {seeds} seed(s), {len(y_test)} test images each")
        results[name] = {
            "n_train": len(y),
            "n_train_positive": int(y.sum()),
            "n_train_synthetic": len(x) - len(train_images),
            "metrics": {m: summarize([r[m] for r in per_seed if not math.isnan(r[m])]) for m in METRICS},
            "per_seed": per_seed,
            "confusion_summed": summed,
        }
    report = {
        "settings": results,
        "split": {"by": how, "file": str(chosen) if chosen else None, "patient_column": patient_column,
                  "seed": None if chosen else split_seed, "test_fraction": None if chosen else test_fraction,
                  "n_train_real": len(train_idx), "n_test": len(y_test), "n_test_positive": n_pos, "test_synthetic": 0},
        "options": {"data": str(data), "label_column": label_column, "positive": positive, "model": model, "seeds": seeds,
                    "epochs": epochs, "res": res, "batch_size": batch_size, "lr": lr, "weights": str(weights) if weights else None,
                    "pretrained": weights is not None, "device": str(dev), "max_images": max_images, "synthetic": [str(s) for s in synthetic]},
        "notes": notes,
    }
    write_json(out / "results.json", report)
    write_csv(out / "results.csv", [{"setting": n, "seed": r["seed"], **{m: r[m] for m in METRICS},
                                     "tn": r["confusion"][0][0], "fp": r["confusion"][0][1], "fn": r["confusion"][1][0], "tp": r["confusion"][1][1],
                                     "n_test": len(y_test)} for n, s in results.items() for r in s["per_seed"]])
    (out / "report.md").write_text(classify_markdown(report), encoding="utf-8")
    return report


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")


def _write_split(path: Path, records: Sequence[Record], train: Sequence[int], test: Sequence[int], positive: str) -> None:
    rows = [{"file": str(records[i].path), "label": records[i].label, "split": side, "synthetic": records[i].synthetic}
            for side, idx in (("train", train), ("test", test)) for i in idx]
    write_csv(path, rows)


def classify_markdown(report: dict[str, Any]) -> str:
    """A Table-6-like markdown table: mean +/- std over seeds, with the counts behind it."""
    o, s = report["options"], report["split"]
    rows = []
    for name, r in report["settings"].items():
        cells = []
        for m in METRICS:
            v = r["metrics"][m]
            cells.append(f"{v['mean']:.3f} ± {v['std']:.3f}" if v["n"] else "n/a")
        rows.append([name, f"{r['n_train']} ({r['n_train_synthetic']} synthetic)", *cells])
    drawn = f"the held-out part of {s['file']}" if s.get("file") else f"split {s['by']} with seed {s['seed']}"
    lines = [
        f"# Classifier: {o['positive']} vs rest ({o['model']}, {'pretrained' if o['pretrained'] else 'from scratch'})",
        "",
        f"Test split: {s['n_test']} real images ({s['n_test_positive']} {o['positive']}), {drawn}; "
        "no synthetic image is in it. Values are mean ± std over "
        f"{o['seeds']} training seed(s); {o['epochs']} epoch(s) at {o['res']} px.",
        "",
        markdown_table(["setting", "train images", *METRICS], rows),
        "",
    ]
    lines += [f"![{n}](confusion-{_slug(n)}.png)" for n in report["settings"]]
    if report["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"
