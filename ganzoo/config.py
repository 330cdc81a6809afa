"""The training configuration: defaults, validation, and TOML/YAML config files."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import NORMALIZATIONS
from .errors import GanzooError

DEFAULT_EPOCHS = 25


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint's config.json."""

    arch: str = "dcgan"
    loss: str | None = None
    res: int = 64
    channels: int = 1
    noise_dim: int = 100
    dataset: str | None = None
    data: str | None = None
    label: str | None = None
    images: int | None = None
    data_seed: int = 0
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float | None = None
    betas: tuple[float, float] | None = None
    n_critic: int | None = None
    gp_lambda: float | None = None
    loss_args: dict[str, Any] | None = None
    noise_factor: float = 0.0
    augment: str | None = None
    ema: float | None = None
    normalize: str = "none"
    clahe: bool = True
    clahe_clip: float = 2.0
    clahe_tile: int = 8
    seed: int = 0
    device: str = "auto"
    sample_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_every: int | None = None
    eval_n: int | None = None
    eval_metric: str = "fid"
    out: str | None = None
    resume: str | None = None
    on_nan: str = "stop"
    precision: str = "fp32"
    channels_last: bool | None = None
    fused: bool | None = None
    cuda_graphs: bool | None = None
    micro_batch: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def dataset_name(self) -> str:
        """`folder` when a path is given, else the built-in `synthetic-cxr`."""
        return self.dataset or ("folder" if self.data else "synthetic-cxr")

    @property
    def loss_name(self) -> str:
        if self.loss:
            return self.loss
        from .models import get_architecture

        return get_architecture(self.arch).default_loss

    def validate(self) -> None:
        """Raise a GanzooError naming the first option that is out of range."""
        checks = [
            (self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}"),
            (self.res >= 8, f"res must be >= 8 (the architectures support 64 and 128), got {self.res}"),
            (self.noise_dim >= 1, f"noise_dim must be >= 1, got {self.noise_dim}"),
            (self.images is None or self.images >= 1, f"images must be >= 1, got {self.images}"),
            (self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.steps is None or self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.epochs is None or self.steps is None, "give --epochs or --steps, not both"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.betas is None or all(0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), got {self.betas}"),
            (self.n_critic is None or self.n_critic >= 1, f"n_critic must be >= 1, got {self.n_critic}"),
            (self.gp_lambda is None or self.gp_lambda >= 0, f"gp_lambda must be >= 0, got {self.gp_lambda}"),
            (self.ema is None or 0 < self.ema < 1, f"ema must be in (0, 1), e.g. 0.999, got {self.ema}"),
            (self.noise_factor >= 0, f"noise_factor must be >= 0, got {self.noise_factor}"),
            (self.normalize in NORMALIZATIONS, f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}"),
            (self.clahe_clip > 0, f"clahe_clip must be > 0, got {self.clahe_clip}"),
            (self.clahe_tile >= 1, f"clahe_tile must be >= 1, got {self.clahe_tile}"),
            (self.sample_every is None or self.sample_every >= 1, f"sample_every must be >= 1, got {self.sample_every}"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.on_nan in ("stop", "skip"), f"on_nan must be stop or skip, got {self.on_nan!r}"),
            (self.eval_every is None or self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (self.eval_n is None or self.eval_n >= 2, f"eval_n must be >= 2, got {self.eval_n}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.micro_batch is None or self.micro_batch >= 0, f"micro_batch must be >= 0 (0: off), got {self.micro_batch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise GanzooError(message)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["betas"] is not None:
            out["betas"] = list(out["betas"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping, rejecting unknown keys and ill-typed values by name."""
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        kwargs = {}
        for raw_key, value in values.items():
            key = str(raw_key).replace("-", "_")
            if key not in hints:
                raise GanzooError(f"{source}: unknown key {raw_key!r}; known keys: {', '.join(known)}")
            kwargs[key] = _coerce(value, hints[key], f"{source}: {key}")
        return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a field's type; ints are accepted where floats are expected."""
    if value is None:
        if _is_optional(hint):
            return None
        raise GanzooError(f"{where} may not be empty")
    base = _strip_optional(hint)
    origin = typing.get_origin(base)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(base)):
            raise GanzooError(f"{where} must be a list of {len(typing.get_args(base))} numbers, got {value!r}")
        return tuple(_coerce(v, t, where) for v, t in zip(value, typing.get_args(base)))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in value.items()):
            raise GanzooError(f"{where} must be a table of name = number/string, got {value!r}")
        return dict(value)
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
    raise GanzooError(f"{where} must be {base.__name__}, got {type(value).__name__} {value!r}")


def _is_optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _strip_optional(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file of training options (keys as in TrainConfig)."""
    path = Path(path)
    if not path.is_file():
        raise GanzooError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise GanzooError(f"config file must be .toml, .yaml or .yml: {path}")
    except GanzooError:
        raise
    except Exception as error:
        raise GanzooError(f"cannot parse {path}: {error}") from None
    if not isinstance(values, dict):
        raise GanzooError(f"{path} must hold a table of options, got {type(values).__name__}")
    return values
