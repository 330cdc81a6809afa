"""Small shared pieces of the study: summary statistics, tables, files, config handling."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shlex
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ganzoo.api import GanzooError, TrainConfig, atomic_write_text, command_line, dump_json, parse_option, read_config_file

# Two-sided 95% Student-t quantiles by degrees of freedom: no scipy at run time.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
        25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    """The 0.975 quantile of Student's t (the nearest tabulated df at or below; 1.96 beyond)."""
    if df < 1:
        return math.nan
    if df > 120:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample std and a 95% t interval (None below 2 values): the spread a reader needs to trust a difference."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "low": None, "high": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": None, "low": None, "high": None, "n": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": half, "low": mean - half, "high": mean + half, "n": n}


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return "" if value is None else str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as CSV with the union of their keys as columns, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dump_json(obj))


def config_hash(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def parse_value(key: str, text: str) -> Any:
    """A --vary/--set value typed as the training option declares it ('none' is None where allowed)."""
    return parse_option(key, text, where="--vary")


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2,...` strings -> {key: [values]}, typed as the TrainConfig field."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise GanzooError(f"--vary must be KEY=V1,V2,..., got {item!r}")
        name = key.strip().replace("-", "_")
        if name in vary:
            raise GanzooError(f"--vary {name} given twice")
        vary[name] = [parse_value(name, v) for v in values.split(",") if v.strip()]
    return vary


def train_command(values: Mapping[str, Any]) -> str:
    """The `ganzoo train` command line that trains exactly this configuration."""
    return shlex.join(["ganzoo", "train", *command_line(values)])


def toml_text(values: Mapping[str, Any]) -> str:
    """A flat TrainConfig mapping as TOML (scalars, lists, one-level tables), for --config."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    return "".join(f"{k} = {scalar(v)}\n" for k, v in values.items() if v is not None)


def load_base(base: str | Path | Mapping[str, Any] | TrainConfig | None) -> dict[str, Any]:
    """A base training configuration from a file, a mapping or a TrainConfig; validated."""
    if base is None:
        values: dict[str, Any] = {}
    elif isinstance(base, TrainConfig):
        values = base.to_dict()
    elif isinstance(base, Mapping):
        values = dict(base)
    else:
        values = read_config_file(base)
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    TrainConfig.from_dict(values, source="base config")
    return values


def explicit(values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys that differ from TrainConfig's defaults (short, readable configs)."""
    defaults = TrainConfig().to_dict()
    out = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            value = list(value)
        default = defaults.get(key)
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            out[key] = value
    return out
