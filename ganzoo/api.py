"""The plugin surface: everything a ganzoo plugin (built-in or third-party) may import.

Plugins import `ganzoo.api` and nothing else from `ganzoo`; what is not here is internal and
may change. Grouped by what a plugin adds:

- every plugin: `hookimpl`, `Register`, the errors, `console`/`logger`/`progress`
- an architecture: `Architecture`, `GAN`, `conv_generator`/`conv_discriminator`, `init_dcgan_weights`
- a loss: `GANLoss` (options checked through `check_args`), `per_sample_rand` for per-sample draws
- a dataset: `DatasetSpec`, `DatasetOptions`, `ImageSet`, `Preprocessing`, `preprocess`, decoding and the dataset cache
- an augmentation: `Augmentation`
- a metric or feature space: `Metric`, `FeatureExtractor`, `MetricContext`, `evaluate`
- an audit: `record_audit`, `read_audit`, `audit_of`, `model_sha256`, `AUDIT_FILE` (the summary contract)
- a hub backend: `HubBackend`, `ModelVersion`, `write_manifest`, `file_entries`, `MANIFEST_FILE`, `MAX_MANIFEST_BYTES`
- hub commands: `hub_push`, `hub_pull`, `hub_show`, `hub_list_models`, `get_hub`
- an executor (runs a study's trainings): `Executor`, `TrainTask`, `TaskResult`, `run_task`
- a command: `load`, `train`, `TrainConfig`, `build_executor`, checkpoints, images, paths and runtime helpers

Names are imported on first use (`EXPORTS`), so importing this module costs nothing: keep a
plugin's hook module free of torch and `ganzoo --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for readers and type checkers; at run time `__getattr__` imports them
    from .audits import AUDIT_FILE, audit_of, model_sha256, read_audit, record_audit
    from .augment import Augmentation
    from .cache_entries import entry_path as cache_entry_path
    from .cache_entries import open_entry as open_cache_entry
    from .cache_entries import pin_entry as pin_cache_entry
    from .cache_entries import remove_entry as remove_cache_entry
    from .caches import write_entry as write_cache_entry
    from .checkpoint import check_safetensors_header, find_checkpoint, load_gan, read_config
    from .config import DEFAULT_EPOCHS, TrainConfig, command_line, parse_option, read_config_file
    from .console import console, logger, progress
    from .data import (
        IMAGE_EXTENSIONS,
        DatasetOptions,
        DatasetSpec,
        Preprocessing,
        UnreadableImage,
        decode_grayscale,
        list_image_files,
        load_cached,
        load_dataset,
        preprocess,
        read_grayscale,
        reduce_to_uint8,
        store_cached,
        cache_key,
    )
    from .distributed import draw_per_sample, per_sample_rand
    from .executors import Executor, TaskResult, TrainTask, build_executor, run_task
    from .folders import METADATA_FILE, file_digests, file_order, labelled_files, read_metadata, replay_skipped, select_label
    from .errors import CheckpointError, DataError, GanzooError, TrainingDiverged, TrainingInterrupted
    from .evaluation import (
        FeatureExtractor,
        Metric,
        MetricContext,
        compute_metrics,
        evaluate,
        get_feature_extractor,
        get_metrics,
        real_baseline,
        real_data_options,
        real_images_for,
    )
    from .hookspecs import Register, hookimpl
    from .imageset import ImageSet
    from .hub import list_models as hub_list_models
    from .hub import load_checkpoint as load
    from .hub import pull as hub_pull
    from .hub import push as hub_push
    from .hub import resolve_checkpoint
    from .hub import show as hub_show
    from .images import to_uint8, write_grid, write_png
    from .locations import HubBackend, ModelVersion, get_hub, validate_name, validate_version
    from .losses import GANLoss, build_loss
    from .manifest import MANIFEST_FILE, MAX_MANIFEST_BYTES, file_entries, write_manifest
    from .models import GAN, Architecture, create_gan, has_batch_norm, init_dcgan_weights
    from .nets import conv_discriminator, conv_generator
    from .paths import atomic_write_bytes, atomic_write_text, cache_dir, dump_json, file_sha256, fsync_dir, ganzoo_home
    from .plugins import register_plugin, registry, unregister_plugin
    from .runtime import environment_versions, resolve_device, seed_everything
    from .runs import train
    from .split_data import make_split
    from .splits import SPLIT_FILE, NoHoldout, read_split, select_part, split_file_for
    from .version import __version__

# name -> "module:attribute" in ganzoo. A name's module is imported when a plugin first uses
# the name, so a plugin that registers only commands (and `ganzoo --help`) imports no torch.
EXPORTS: dict[str, str] = {
    "AUDIT_FILE": "audits:AUDIT_FILE",
    "audit_of": "audits:audit_of",
    "model_sha256": "audits:model_sha256",
    "read_audit": "audits:read_audit",
    "record_audit": "audits:record_audit",
    "Augmentation": "augment:Augmentation",
    "cache_entry_path": "cache_entries:entry_path",
    "open_cache_entry": "cache_entries:open_entry",
    "pin_cache_entry": "cache_entries:pin_entry",
    "remove_cache_entry": "cache_entries:remove_entry",
    "write_cache_entry": "caches:write_entry",
    "check_safetensors_header": "checkpoint:check_safetensors_header",
    "find_checkpoint": "checkpoint:find_checkpoint",
    "load_gan": "checkpoint:load_gan",
    "read_config": "checkpoint:read_config",
    "DEFAULT_EPOCHS": "config:DEFAULT_EPOCHS",
    "TrainConfig": "config:TrainConfig",
    "read_config_file": "config:read_config_file",
    "command_line": "config:command_line",
    "parse_option": "config:parse_option",
    "console": "console:console",
    "logger": "console:logger",
    "progress": "console:progress",
    "IMAGE_EXTENSIONS": "data:IMAGE_EXTENSIONS",
    "DatasetOptions": "data:DatasetOptions",
    "DatasetSpec": "data:DatasetSpec",
    "ImageSet": "imageset:ImageSet",
    "Preprocessing": "data:Preprocessing",
    "UnreadableImage": "data:UnreadableImage",
    "decode_grayscale": "data:decode_grayscale",
    "list_image_files": "data:list_image_files",
    "load_cached": "data:load_cached",
    "load_dataset": "data:load_dataset",
    "preprocess": "data:preprocess",
    "read_grayscale": "data:read_grayscale",
    "reduce_to_uint8": "data:reduce_to_uint8",
    "store_cached": "data:store_cached",
    "cache_key": "data:cache_key",
    "per_sample_rand": "distributed:per_sample_rand",
    "draw_per_sample": "distributed:draw_per_sample",
    "Executor": "executors:Executor",
    "TaskResult": "executors:TaskResult",
    "TrainTask": "executors:TrainTask",
    "build_executor": "executors:build_executor",
    "run_task": "executors:run_task",
    "METADATA_FILE": "folders:METADATA_FILE",
    "file_digests": "folders:file_digests",
    "file_order": "folders:file_order",
    "labelled_files": "folders:labelled_files",
    "read_metadata": "folders:read_metadata",
    "replay_skipped": "folders:replay_skipped",
    "select_label": "folders:select_label",
    "CheckpointError": "errors:CheckpointError",
    "DataError": "errors:DataError",
    "GanzooError": "errors:GanzooError",
    "TrainingDiverged": "errors:TrainingDiverged",
    "TrainingInterrupted": "errors:TrainingInterrupted",
    "FeatureExtractor": "evaluation:FeatureExtractor",
    "Metric": "evaluation:Metric",
    "MetricContext": "evaluation:MetricContext",
    "compute_metrics": "evaluation:compute_metrics",
    "evaluate": "evaluation:evaluate",
    "get_feature_extractor": "evaluation:get_feature_extractor",
    "get_metrics": "evaluation:get_metrics",
    "real_baseline": "evaluation:real_baseline",
    "real_data_options": "evaluation:real_data_options",
    "real_images_for": "evaluation:real_images_for",
    "SPLIT_FILE": "splits:SPLIT_FILE",
    "NoHoldout": "splits:NoHoldout",
    "read_split": "splits:read_split",
    "select_part": "splits:select_part",
    "split_file_for": "splits:split_file_for",
    "make_split": "split_data:make_split",
    "Register": "hookspecs:Register",
    "hookimpl": "hookspecs:hookimpl",
    "hub_list_models": "hub:list_models",
    "load": "hub:load_checkpoint",
    "hub_pull": "hub:pull",
    "hub_push": "hub:push",
    "resolve_checkpoint": "hub:resolve_checkpoint",
    "hub_show": "hub:show",
    "to_uint8": "images:to_uint8",
    "write_grid": "images:write_grid",
    "write_png": "images:write_png",
    "HubBackend": "locations:HubBackend",
    "ModelVersion": "locations:ModelVersion",
    "get_hub": "locations:get_hub",
    "validate_name": "locations:validate_name",
    "validate_version": "locations:validate_version",
    "GANLoss": "losses:GANLoss",
    "build_loss": "losses:build_loss",
    "MANIFEST_FILE": "manifest:MANIFEST_FILE",
    "MAX_MANIFEST_BYTES": "manifest:MAX_MANIFEST_BYTES",
    "file_entries": "manifest:file_entries",
    "write_manifest": "manifest:write_manifest",
    "GAN": "models:GAN",
    "Architecture": "models:Architecture",
    "create_gan": "models:create_gan",
    "has_batch_norm": "models:has_batch_norm",
    "init_dcgan_weights": "models:init_dcgan_weights",
    "conv_discriminator": "nets:conv_discriminator",
    "conv_generator": "nets:conv_generator",
    "atomic_write_bytes": "paths:atomic_write_bytes",
    "atomic_write_text": "paths:atomic_write_text",
    "cache_dir": "paths:cache_dir",
    "dump_json": "paths:dump_json",
    "file_sha256": "paths:file_sha256",
    "fsync_dir": "paths:fsync_dir",
    "ganzoo_home": "paths:ganzoo_home",
    "register_plugin": "plugins:register_plugin",
    "registry": "plugins:registry",
    "unregister_plugin": "plugins:unregister_plugin",
    "environment_versions": "runtime:environment_versions",
    "resolve_device": "runtime:resolve_device",
    "seed_everything": "runtime:seed_everything",
    "train": "runs:train",
    "__version__": "version:__version__",
}
__all__ = list(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(f"ganzoo.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})
