"""The training options, each declared once: name, type, default, help, valid range, resumable.

The TrainConfig dataclass, its validation, the `ganzoo train` flags (ganzoo/train_command.py),
the options table in README.md and docs/usage.md, and the command lines the study writes
all come from the field declarations below.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import GanzooError
from .plugins import registry

# This module imports no torch: `ganzoo --help` builds the train flags from it.
DEFAULT_EPOCHS = 25
MAX_SEED = 2**63 - 1
NORMALIZATIONS = ("none", "torch")
# Options of the built-in losses that keep flags of their own; they travel in `loss_args`.
LOSS_ARG_ALIASES: dict[str, tuple[type, str]] = {
    "n_critic": (int, "Discriminator steps per generator step (alias of --loss-arg n_critic=N). (default: per loss)"),
    "gp_lambda": (float, "Gradient-penalty weight, wgan-gp (alias of --loss-arg gp_lambda=X). (default: 10)"),
}


def option(
    default: Any,
    help: str,
    check: tuple[Callable[[Any], bool], str] | None = None,
    resumable: bool = False,
    default_text: str | None = None,
) -> Any:
    """A TrainConfig field: `check` is (predicate on a non-None value, what a valid value is);
    `resumable` options may change when a run is resumed; `default_text` is how help shows a
    default that depends on other options."""
    metadata = {"help": help, "check": check, "resumable": resumable, "default_text": default_text}
    return dataclasses.field(default=default, metadata=metadata)


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _positive_int(v: int) -> bool:
    return v >= 1


POSITIVE = (_positive_int, ">= 1")
SEED = (lambda v: 0 <= v <= MAX_SEED, "an integer in [0, 2**63 - 1]")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint's config.json."""

    arch: str = option("dcgan", "Architecture (ganzoo list archs).")
    loss: str | None = option(None, "Loss (ganzoo list losses).", default_text="the architecture's")
    res: int = option(64, "Resolution: 64 or 128.", (lambda v: 8 <= v <= 1024, "in [8, 1024]; the built-in architectures take 64 and 128"))
    channels: int = option(1, "1 (gray) or 3 (gray replicated).", (lambda v: v in (1, 3), "1 or 3"))
    noise_dim: int = option(100, "Length of z.", (lambda v: 1 <= v <= 4096, "in [1, 4096]"))
    dataset: str | None = option(None, "Dataset name (ganzoo list datasets).", default_text="folder with --data, else synthetic-cxr")
    data: str | None = option(None, "Image folder: class subfolders or metadata.csv (file,label).", default_text="synthetic phantoms")
    label: str | None = option(None, "Train on this class only.")
    window: str | None = option(None, "DICOM VOI window: CENTER,WIDTH or auto.", default_text="the file's VOI LUT or window")
    split: str | None = option(None, "Split file of ganzoo split: train on its train part, score on its held-out part; none: no split.", default_text="DATA/ganzoo-split.json if present")
    images: int | None = option(None, "Use at most N images (seeded subset).", POSITIVE)
    data_seed: int = option(0, "Seed of the subset and of synthetic data.", SEED)
    epochs: int | None = option(None, "Epochs: passes of the discriminator over the data.", POSITIVE, resumable=True, default_text=str(DEFAULT_EPOCHS))
    steps: int | None = option(None, "Generator steps, instead of --epochs.", POSITIVE, resumable=True)
    batch_size: int = option(128, "Batch size.", POSITIVE)
    lr: float | None = option(None, "Adam learning rate.", (lambda v: 0 < v and _finite(v), "> 0"), default_text="per loss")
    betas: tuple[float, float] | None = option(None, "Adam betas, e.g. 0.5,0.999.", (lambda v: all(0 <= b < 1 for b in v), "two numbers in [0, 1)"), default_text="per loss")
    loss_args: dict[str, Any] | None = option(None, "Loss option KEY=VALUE (repeatable), e.g. gp_lambda=10.", default_text="per loss")
    noise_factor: float = option(0.0, "The study's extra f*randn added to z.", (lambda v: 0 <= v and _finite(v), ">= 0"))
    augment: str | None = option(None, "Discriminator augmentation, e.g. diffaugment:color,translation,cutout.")
    ema: float | None = option(None, "EMA of the generator with this decay (e.g. 0.999), used for sampling.", (lambda v: 0 < v < 1, "in (0, 1), e.g. 0.999"))
    ema_start: int = option(1000, "EMA start: before generator step N the EMA copies the live generator (an average lags a GAN still improving fast); 0: average from the first step.", (lambda v: 0 <= v <= 10**12, ">= 0"))
    ema_warmup: int = option(10, "EMA warm-up: update t uses decay min(--ema, (1+t)/(N+t)); 1: a constant decay.", (lambda v: 1 <= v <= 10**9, ">= 1"))
    normalize: str = option("none", "none (scale to [-1, 1]) or torch (Normalize with the data's mean/std).", (lambda v: v in NORMALIZATIONS, "one of " + ", ".join(NORMALIZATIONS)))
    clahe: bool = option(True, "CLAHE equalisation, as in the study.")
    clahe_clip: float = option(2.0, "CLAHE clip limit.", (lambda v: 0 < v <= 1000 and _finite(v), "in (0, 1000]"))
    clahe_tile: int = option(8, "CLAHE tile grid size (tiles per side).", (lambda v: 1 <= v <= 64, "in [1, 64] (tiles per side; OpenCV allocates per tile)"))
    seed: int = option(0, "Seed of weights, noise and data order.", SEED)
    device: str = option("auto", "auto, cpu, cuda or cuda:N.", resumable=True)
    sample_every: int | None = option(None, "Save a sample grid every N epochs (and at the end).", POSITIVE, resumable=True)
    checkpoint_every: int | None = option(None, "Checkpoint every N epochs (and at the end).", POSITIVE, resumable=True)
    keep_checkpoints: int = option(3, "Keep the newest K checkpoints.", POSITIVE, resumable=True)
    log_every: int = option(10, "Log losses every N steps.", POSITIVE, resumable=True)
    eval_every: int | None = option(None, "Score --eval-metric every N epochs (and at the end); the best is kept as best/.", POSITIVE, resumable=True)
    eval_n: int | None = option(None, "Generated images per evaluation.", (lambda v: v >= 2, ">= 2"), resumable=True, default_text="as many as training images")
    eval_metric: str = option("fid", "Metric for --eval-every (ganzoo list metrics).", resumable=True)
    out: str | None = option(None, "Run directory.", default_text="runs/<arch>-<res>-<time>")
    resume: str | None = option(None, "Continue the run in this directory (or checkpoint); auto: the --out run if it has one.")
    overwrite: bool = option(False, "Start over in an --out that already holds a run: its checkpoints, samples and log are removed first.")
    resume_anyway: bool = option(False, "Resume even though the dataset's fingerprint changed.", resumable=True)
    on_nan: str = option("stop", "stop: a NaN/Inf loss ends training; skip: skip that update.", (lambda v: v in ("stop", "skip"), "stop or skip"), resumable=True)
    precision: str = option("fp32", "fp32 or bf16 (autocast convolutions; weights, losses, penalty in fp32).", (lambda v: v in ("fp32", "bf16"), "one of fp32, bf16"), resumable=True)
    channels_last: bool | None = option(None, "NHWC memory layout.", resumable=True, default_text="on")
    fused: bool | None = option(None, "Fused kernels: fp32-statistics InstanceNorm, one critic pass on real+fake; on a GPU fused Adam and the first conv as a matrix product.", resumable=True, default_text="on")
    cuda_graphs: bool | None = option(None, "Replay whole iterations as CUDA graphs.", resumable=True, default_text="on for a GPU")
    micro_batch: int | None = option(None, "Critic steps in chunks of N images where critic and loss are per-sample; 0: off.", (lambda v: v >= 0, ">= 0"), resumable=True, default_text="32 on the CPU, 0 on a GPU")
    # Which keys the user gave (CLI, file, dict): on resume only those override the saved run.
    given: frozenset[str] | None = dataclasses.field(default=None, compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        self.validate()

    @property
    def dataset_name(self) -> str:
        return default_dataset(self.dataset, self.data)

    @property
    def loss_name(self) -> str:
        if self.loss:
            return self.loss
        return registry("architectures").get(self.arch).default_loss

    def validate(self) -> None:
        """Raise a GanzooError naming the first option that is out of range."""
        for f in declared_options():
            value = getattr(self, f.name)
            check = f.metadata["check"]
            if value is not None and check is not None and not check[0](value):
                raise GanzooError(f"{f.name} must be {check[1]}, got {value!r}")
        if self.epochs is not None and self.steps is not None:
            raise GanzooError("give --epochs or --steps, not both")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in declared_options()}
        if out["betas"] is not None:
            out["betas"] = list(out["betas"])
        if out["loss_args"] is not None:
            out["loss_args"] = dict(out["loss_args"])
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping, rejecting unknown keys and ill-typed values by name; the keys
        given are remembered (resume lets only those override the saved run)."""
        hints = typing.get_type_hints(cls)
        known = [f.name for f in declared_options()]
        kwargs: dict[str, Any] = {}
        aliased: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = str(raw_key).replace("-", "_")
            if key in LOSS_ARG_ALIASES:
                if value is not None:
                    aliased[key] = _coerce(value, LOSS_ARG_ALIASES[key][0], f"{source}: {key}")
                continue
            if key not in known:
                raise GanzooError(f"{source}: unknown key {raw_key!r}; known keys: {', '.join(known)}")
            kwargs[key] = _coerce(value, hints[key], f"{source}: {key}")
        if aliased:
            loss_args = dict(kwargs.get("loss_args") or {})
            for key, value in aliased.items():
                if key in loss_args and loss_args[key] != value:
                    raise GanzooError(f"{source}: {key} is given twice ({value!r} and loss_args {loss_args[key]!r})")
                loss_args[key] = value
            kwargs["loss_args"] = loss_args
        return cls(**kwargs, given=frozenset(kwargs))


def default_dataset(dataset: str | None, path: str | None) -> str:
    """The dataset a run uses: the one named, else `folder` for a path, else the built-in phantoms."""
    return dataset or ("folder" if path else "synthetic-cxr")


def declared_options() -> Iterator[dataclasses.Field]:
    """The user-facing TrainConfig fields, in declaration order."""
    return (f for f in dataclasses.fields(TrainConfig) if not f.metadata.get("internal"))


def flag_name(name: str) -> str:
    return name.replace("_", "-")


def resumable_options() -> frozenset[str]:
    return frozenset(f.name for f in declared_options() if f.metadata["resumable"])


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
            if not math.isfinite(value):
                raise GanzooError(f"{where} must be a finite number, got {value!r}")
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


def parse_option(key: str, text: str, where: str = "option") -> Any:
    """A value typed from text as the option `key` declares it ('none' is None where allowed);
    the study's `--vary KEY=V1,V2` values come through here."""
    name = key.replace("-", "_")
    hints = typing.get_type_hints(TrainConfig)
    if name in LOSS_ARG_ALIASES:
        hint: Any = LOSS_ARG_ALIASES[name][0] | None
    elif name in hints and name != "given":
        hint = hints[name]
    else:
        known = [f.name for f in declared_options()] + list(LOSS_ARG_ALIASES)
        raise GanzooError(f"{where} {key}: unknown key; known keys: {', '.join(known)}")
    raw = text.strip()
    if raw.lower() in ("none", "null") and _is_optional(hint):
        return None
    base = _strip_optional(hint)
    try:
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if base is int:
            return int(raw)
        if base is float:
            return float(raw)
        if typing.get_origin(base) is tuple:
            return tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise GanzooError(f"{where} {key}: {raw!r} is not a valid value for {name}") from None
    if typing.get_origin(base) is dict:
        raise GanzooError(f"{where} {key}: give loss options one by one, e.g. gp_lambda=5")
    return raw


def command_line(values: Mapping[str, Any]) -> list[str]:
    """The `ganzoo train` arguments that set exactly `values` (defaults and None left out)."""
    defaults = TrainConfig().to_dict()
    args: list[str] = []
    for key, value in values.items():
        if key == "resume" or value is None or value == defaults.get(key):
            continue
        flag = "--" + flag_name(key)
        if key == "betas":
            args += [flag, ",".join(str(v) for v in value)]
        elif key == "loss_args":
            for k, v in value.items():
                args += ["--loss-arg", f"{k}={v}"]
        elif key in LOSS_ARG_ALIASES:
            args += ["--loss-arg", f"{key}={value}"]
        elif isinstance(value, bool):
            args.append(flag if value else "--no-" + flag_name(key))
        else:
            args += [flag, str(value)]
    return args


def options_table() -> str:
    """The markdown table of `ganzoo train` options, as README.md and docs/usage.md show it."""
    rows = ["| option | meaning | default |", "|---|---|---|"]
    for f in declared_options():
        default = f.metadata["default_text"] or ("off" if f.default is None else f.default)
        if isinstance(default, bool):
            default = "on" if default else "off"
        flag = f"`--{flag_name(f.name)}`"
        if f.name == "loss_args":
            flag = "`--loss-arg`"
        elif _strip_optional(typing.get_type_hints(TrainConfig)[f.name]) is bool:
            flag = f"`--{flag_name(f.name)}/--no-{flag_name(f.name)}`"
        resumable = " May change on `--resume`." if f.metadata["resumable"] else ""
        rows.append(f"| {flag} | {f.metadata['help']}{resumable} | {default} |")
    for name, (_, help) in LOSS_ARG_ALIASES.items():
        rows.append(f"| `--{flag_name(name)}` | {help.rsplit(' (default', 1)[0]} | per loss |")
    return "\n".join(rows) + "\n"


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
