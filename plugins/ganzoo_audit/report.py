"""The audit's outputs: audit.json (every number), report.md (for people), the figures, and
the summary that model cards and other commands read (`ganzoo.api.read_audit`).

The summary and its Markdown hold counts and scores only, never an image or a file name, so
they can be published; the gallery holds training images and stays in `--out`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganzoo.api import AUDIT_FILE, atomic_write_text, dump_json

from .distances import Neighbours
from .figures import gallery, histograms

RESEARCH_NOTE = (
    "Research use only, never for diagnosis. An audit that finds no copies does not prove that no training image is reproduced: "
    "it tests near-copies in one feature space, at this sample size."
)


def verdict(flagged: int, generated: int) -> str:
    """The one-line verdict."""
    return "no copies found" if flagged == 0 else f"{flagged} of {generated} samples flagged as near-copies"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _interval(values: list[float] | None, pct: bool = False) -> str:
    if not values:
        return ""
    return f" [{_pct(values[0])}, {_pct(values[1])}]" if pct else f" [{values[0]:.3f}, {values[1]:.3f}]"


def _membership_line(membership: dict[str, Any]) -> str:
    if "skipped" in membership:
        return f"Membership (discriminator): skipped, {membership['skipped']}."
    return (f"Membership (discriminator, {membership['n_training']} training vs {membership['n_held_out']} held-out images): "
            f"AUC {membership['auc']:.3f}{_interval(membership['auc_ci95'])} (0.5: no leak), "
            f"TPR at 1% FPR {_pct(membership['tpr_at_1pct_fpr'])}{_interval(membership['tpr_at_1pct_fpr_ci95'], True)}.")


def card_markdown(report: dict[str, Any]) -> str:
    """The short block a model card shows."""
    flagged, threshold, copying = report["flagged"], report["threshold"], report["copying"]
    auth = report["authenticity"]
    held = report["data"]["held_out"]["used"]
    chance = f"; about {flagged['expected_by_chance']:.1f} expected by chance" if "expected_by_chance" in flagged else ""
    c_t = "not computed (too few samples per cell)" if copying["value"] is None else f"{copying['value']:.2f}"
    return "\n".join([
        f"Audited with `ganzoo audit` (ganzoo {report['ganzoo_version']}, {report['created']}): {flagged['n']} generated images vs "
        f"{held} held-out real images and {report['data']['training']['images']} training images, feature space `{report['features']['name']}`.",
        "",
        f"- **Verdict: {report['verdict']}** (threshold calibrated on the held-out images: at most {_pct(threshold['false_alarm_bound'])} "
        f"of new real images are flagged{chance}).",
        f"- Data-copying test C_T (Meehan et al. 2020) = {c_t}: about 0 without copying, <= -3 copying, > 0 samples farther from the training images than new real images.",
        f"- Authenticity (Alaa et al. 2022): {_pct(auth['generated_unauthentic']['rate'])} of generated vs "
        f"{_pct(auth['held_out_unauthentic']['rate'])} of held-out images lie closer to a training image than it lies to its nearest training neighbour.",
        f"- {_membership_line(report['membership'])}",
        "",
        RESEARCH_NOTE,
    ])


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """The publishable summary (`audit.json`'s `summary`): scalars and the card's Markdown."""
    membership = report["membership"]
    summary: dict[str, Any] = {
        "verdict": report["verdict"],
        "flagged": int(report["flagged"]["count"]),
        "generated": int(report["flagged"]["n"]),
        "model_sha256": report["model"].get("model_sha256"),
        "features": report["features"]["name"],
        "q": report["threshold"]["q"],
        "false_alarm_bound": report["threshold"]["false_alarm_bound"],
        "held_out_images": int(report["data"]["held_out"]["used"]),
        "training_images": int(report["data"]["training"]["images"]),
        "training_fingerprint": report["data"]["training"]["fingerprint"],
        "c_t": report["copying"]["value"],
        "generated_unauthentic": report["authenticity"]["generated_unauthentic"]["rate"],
        "held_out_unauthentic": report["authenticity"]["held_out_unauthentic"]["rate"],
        "created": report["created"],
        "ganzoo_version": report["ganzoo_version"],
    }
    if "skipped" in membership:
        summary["membership"] = f"skipped: {membership['skipped']}"
    else:
        summary.update(membership_auc=membership["auc"], membership_auc_low=membership["auc_ci95"][0], membership_auc_high=membership["auc_ci95"][1],
                       membership_tpr_at_1pct_fpr=membership["tpr_at_1pct_fpr"])
    summary["markdown"] = card_markdown(report)
    return summary


def _cells_table(copying: dict[str, Any]) -> list[str]:
    lines = ["| cell | generated | held-out | held-out share | Z_U |", "| --- | --- | --- | --- | --- |"]
    for cell in copying["cells"]:
        z = f"{cell['z_u']:.2f}" if "z_u" in cell else f"dropped ({cell['dropped']})"
        lines.append(f"| {cell['cell']} | {cell['n_generated']} | {cell['n_held_out']} | {cell['held_out_share']:.2f} | {z} |")
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the verdict, every number with its counts, what was compared, and the limits."""
    flagged, threshold, dist = report["flagged"], report["threshold"], report["distances"]
    data, settings = report["data"], report["settings"]
    model = report["model"]
    what = f"checkpoint `{model.get('checkpoint')}` (weights sha256 `{str(model.get('model_sha256'))[:16]}`, seed {model.get('seed')})" \
        if model.get("kind") == "checkpoint" else f"the images in `{model.get('folder')}`"
    lines = [
        "# Memorization audit", "", f"**{report['verdict']}**", "", f"Audited: {what}.", "",
        f"Training images: {data['training']['images']} (`{data['training']['name']}`, fingerprint `{data['training']['fingerprint']}`). "
        f"Held-out real images: {data['held_out']['used']} used of {data['held_out']['images']} (fingerprint `{data['held_out']['fingerprint']}`).",
        f"Feature space `{report['features']['name']}`; q = {settings['q']:g}, k = {settings['k']}, {settings['cells']} cells, seed {settings['seed']}.", "",
        "## Numbers", "", card_markdown(report), "",
        "| measure | generated | held-out real |", "| --- | --- | --- |",
        f"| flagged (DCR < {threshold['value']:.4g}) | {flagged['count']} of {flagged['n']} ({_pct(flagged['rate'])}{_interval(flagged['ci95'], True)}) "
        f"| at most {_pct(threshold['false_alarm_bound'])} by construction |",
        f"| DCR median [min] | {dist['generated']['dcr'].get('median', float('nan')):.4g} [{dist['generated']['dcr'].get('min', float('nan')):.4g}] "
        f"| {dist['held_out']['dcr'].get('median', float('nan')):.4g} [{dist['held_out']['dcr'].get('min', float('nan')):.4g}] |",
        f"| NNDR median | {dist['generated']['nndr'].get('median', float('nan')):.3f} | {dist['held_out']['nndr'].get('median', float('nan')):.3f} |",
        f"| unauthentic | {_pct(report['authenticity']['generated_unauthentic']['rate'])} | {_pct(report['authenticity']['held_out_unauthentic']['rate'])} |",
        "",
    ]
    if "p_value" in flagged:
        lines += [f"Flags beyond chance: {flagged['count']} flagged where about {flagged['expected_by_chance']:.1f} are expected at the "
                  f"false-alarm bound (one-sided binomial p = {flagged['p_value']:.3g}).", ""]
    if threshold.get("note"):
        lines += [f"Note: {threshold['note']}.", ""]
    duplicates = data["held_out_duplicates"]
    if duplicates["count"]:
        lines += [f"{duplicates['count']} held-out image(s) were left out as copies of training images ({duplicates['rule']}); "
                  "split the data by patient (`--group-by`) so the same X-ray is not on both sides. Files: "
                  + ", ".join(f"`{f}`" for f in duplicates["files"][:20]), ""]
    c_t = report["copying"]
    lines += ["## Data-copying test per cell", "", f"C_T = {c_t['value'] if c_t['value'] is None else round(c_t['value'], 3)}", "", *_cells_table(c_t), ""]
    lines += ["## Most suspicious samples", "", "![generated | nearest training image](gallery.png)", "",
              "| rank | sample | DCR | NNDR | flagged | nearest training image |", "| --- | --- | --- | --- | --- | --- |"]
    for rank, item in enumerate(report["suspicious"], 1):
        nearest = item["neighbours"][0]
        lines.append(f"| {rank} | {item['file'] or item['index']} | {item['dcr']:.4g} | {item['nndr']:.3f} | {'yes' if item['flagged'] else ''} "
                     f"| {nearest['training_file'] or nearest['training_index']} |")
    lines += ["", "![distance histograms](histograms.png)", "", "## Limits", "",
              "- The threshold bounds false alarms for real images like the held-out ones; generated images are not exchangeable with them.",
              "- Few held-out images make the threshold coarse and C_T weak (see docs/audit.md for the calibration).",
              "- Near-copies are judged in one feature space; a copy altered beyond it (crops, flips, heavy edits) can pass.",
              "- gallery.png shows training images: keep this directory where the training data may be.", "", RESEARCH_NOTE, ""]
    return "\n".join(lines)


def write_outputs(out: Path, report: dict[str, Any], generated: torch.Tensor, training: torch.Tensor, generated_nb: Neighbours, held_out_nb: Neighbours) -> None:
    """audit.json, report.md, gallery.png and histograms.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    gallery(out / "gallery.png", generated, training, report["suspicious"])
    histograms(out / "histograms.png", generated_nb.dcr, held_out_nb.dcr, generated_nb.nndr, held_out_nb.nndr, report["threshold"]["value"])
    atomic_write_text(out / "report.md", report_markdown(report))
    atomic_write_text(out / AUDIT_FILE, dump_json(report))
