"""The model card (README.md with YAML front matter) written into every checkpoint."""

from __future__ import annotations

from typing import Any

import yaml

INTENDED_USE = "research use only; not for clinical diagnosis"


def model_card(config: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """A Hugging Face-style model card built from a checkpoint's config.json."""
    training = config.get("training", {})
    dataset = config.get("dataset", {})
    model_args = config.get("model_args", {})
    front = {
        "library_name": "ganzoo",
        "architecture": config.get("architecture"),
        "loss": config.get("loss"),
        "resolution": model_args.get("resolution"),
        "channels": model_args.get("channels"),
        "dataset": dataset.get("name"),
        "dataset_fingerprint": dataset.get("fingerprint"),
        "dataset_label": dataset.get("label"),
        "image_count": dataset.get("images"),
        "epochs": config.get("progress", {}).get("epoch"),
        "steps": config.get("progress", {}).get("step"),
        "augment": training.get("augment"),
        "ema": training.get("ema"),
        "intended_use": INTENDED_USE,
        "tags": ["ganzoo", "gan", "image-generation", "medical-imaging-research"],
        **(extra or {}),
    }
    synthetic_note = (
        f"\nThe training data were **synthetic** (dataset `{dataset.get('name')}`), not patient images.\n"
        if dataset.get("synthetic")
        else ""
    )
    return (
        "---\n"
        + yaml.safe_dump(front, sort_keys=False)
        + "---\n\n"
        + f"# {config.get('architecture')} {model_args.get('resolution')}x{model_args.get('resolution')} (ganzoo)\n\n"
        + "**Research use only. Not for diagnosis.** Images from this model are synthetic and must never be "
        + "presented or stored as a patient's.\n"
        + synthetic_note
        + "\n## Training\n\n"
        + f"- architecture `{config.get('architecture')}`, loss `{config.get('loss')}` {config.get('loss_args', {})}\n"
        + f"- dataset `{dataset.get('name')}` (fingerprint `{dataset.get('fingerprint')}`, {dataset.get('images')} images"
        + (f", label `{dataset.get('label')}`" if dataset.get("label") else "")
        + ")\n"
        + f"- batch size {training.get('batch_size')}, seed {training.get('seed')}, "
        + f"{config.get('progress', {}).get('step')} steps\n\n"
        + "## Use\n\n"
        + "```python\nimport ganzoo\n\ngan = ganzoo.load(\"PATH_TO_THIS_DIRECTORY\")\nimages = gan.sample(16, seed=0)  # (16, C, H, W) in [-1, 1]\n```\n\n"
        + "or `ganzoo generate PATH_TO_THIS_DIRECTORY -n 16 --out samples/`.\n"
    )
