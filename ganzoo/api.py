"""The plugin surface: everything a ganzoo plugin (built-in or third-party) may import.

Plugins import `ganzoo.api` and nothing else from `ganzoo`; what is not here is internal and
may change. Grouped by what a plugin adds:

- every plugin: `hookimpl`, `Register`, the errors, `console`/`logger`/`progress`
- an architecture: `Architecture`, `GAN`, `conv_generator`/`conv_discriminator`, `init_dcgan_weights`
- a loss: `GANLoss` (options checked through `check_args`), `per_sample_rand`/`draw_per_sample` for per-sample draws
- a dataset: `DatasetSpec`, `DatasetOptions`, `ImageSet`, `Preprocessing`, `preprocess`, decoding and the dataset cache
- an augmentation: `Augmentation`
- a metric or feature space: `Metric`, `FeatureExtractor`, `MetricContext`, `evaluate`
- a hub backend: `HubBackend`, `ModelVersion`, `write_manifest`, `file_entries`, `MANIFEST_FILE`, `MAX_MANIFEST_BYTES`
- hub commands: `hub_push`, `hub_pull`, `hub_show`, `hub_list_models`, `get_hub`
- a cache of its own data: `open_cache_entry`, `pin_cache_entry`, `write_cache_entry`, `remove_cache_entry`, `cache_entry_path` (caches `datasets`, `features`, `weights`, `hub-pulls`)
- a command: `load`, `train`, `TrainConfig`, checkpoints, images, paths and runtime helpers
"""

from __future__ import annotations

from .augment import Augmentation
from .cache_entries import entry_path as cache_entry_path
from .cache_entries import open_entry as open_cache_entry
from .cache_entries import pin_entry as pin_cache_entry
from .cache_entries import remove_entry as remove_cache_entry
from .caches import write_entry as write_cache_entry
from .checkpoint import check_safetensors_header, find_checkpoint, load_gan, read_config
from .config import TrainConfig, command_line, parse_option, read_config_file
from .console import console, logger, progress
from .data import (
    IMAGE_EXTENSIONS,
    DatasetOptions,
    DatasetSpec,
    ImageSet,
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
from .version import __version__

__all__ = [
    "IMAGE_EXTENSIONS", "MANIFEST_FILE", "MAX_MANIFEST_BYTES", "Architecture", "Augmentation", "CheckpointError", "DataError", "DatasetOptions",
    "DatasetSpec", "FeatureExtractor", "GAN", "GANLoss", "GanzooError", "HubBackend", "ImageSet", "Metric", "MetricContext",
    "ModelVersion", "Preprocessing", "Register", "TrainConfig", "TrainingDiverged", "TrainingInterrupted", "UnreadableImage",
    "__version__", "atomic_write_bytes", "atomic_write_text", "build_loss", "cache_dir", "command_line", "cache_entry_path", "cache_key", "check_safetensors_header", "compute_metrics", "console",
    "conv_discriminator", "conv_generator", "create_gan", "decode_grayscale", "draw_per_sample", "dump_json", "environment_versions", "evaluate",
    "file_entries", "file_sha256", "find_checkpoint", "fsync_dir", "ganzoo_home", "get_feature_extractor", "get_hub", "get_metrics", "has_batch_norm",
    "hookimpl", "hub_list_models", "hub_pull", "hub_push", "hub_show", "init_dcgan_weights", "list_image_files", "load", "load_cached", "load_dataset", "load_gan", "logger",
    "open_cache_entry", "pin_cache_entry", "remove_cache_entry", "write_cache_entry",
    "parse_option", "per_sample_rand", "preprocess", "progress", "read_config", "read_config_file", "read_grayscale", "real_baseline", "reduce_to_uint8",
    "real_data_options", "real_images_for", "register_plugin", "registry", "unregister_plugin", "resolve_checkpoint", "resolve_device", "seed_everything",
    "store_cached", "to_uint8", "train", "validate_name", "validate_version", "write_grid", "write_manifest", "write_png",
]
