"""One small trainer: discriminator steps, generator step, logs, sample grids, checkpoints.

A *step* is one generator update after `n_critic` discriminator updates, each on a fresh
real batch. The data order is a pure function of (seed, batch number), and every random
draw of the loop comes from one saved torch.Generator, so resuming is exact.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from rich.markup import escape
from torch import nn

from . import distributed
from .augment import AugmentedDiscriminator, build_augmentation
from .card import model_card
from .checkpoint import FORMAT_VERSION, load_gan, write_checkpoint
from .config import DEFAULT_EPOCHS, TrainConfig
from .console import console, logger, progress
from .ema import ema_decay, update_ema
from .data import DatasetOptions, ImageSet, Preprocessing, load_dataset, to_model_input
from .errors import GanzooError, TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate as evaluate_metrics
from .evaluation import get_metrics
from .fast import PRECISIONS, FastOptions, FloatScores, GraphedStep, swap_instance_norms, swap_thin_convs
from .images import to_uint8, write_grid
from .loss_window import LOSS_CURVE_FILE, LossWindow, ProgressLines, format_seconds, write_loss_curve
from .losses import GANLoss, build_loss
from .models import GAN, Normalization, create_gan, get_architecture
from .paths import default_run_dir, prepare_output_dir
from .plugins import plugin_versions, provenance
from .runtime import derived_seed, environment_versions, resolve_device, seed_everything
from .splits import describe_split, split_file_for, warn_if_training_images
from .steps import TrainingSteps
from .train_state import collect_state, restore_state
from .version import __version__

GRID_SIZE = 64


class Trainer(TrainingSteps):
    """Trains one GAN described by a TrainConfig; `fit()` runs it, `save()` checkpoints it."""

    def __init__(self, config: TrainConfig, data: ImageSet | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.shard = distributed.init(self.device.type) if distributed.launched_by_torchrun() else distributed.current()
        if self.device.type == "cuda" and self.shard.world > 1:
            self.device = torch.device("cuda", self.shard.local_rank)
            torch.cuda.set_device(self.device)
        if config.precision not in PRECISIONS:
            raise GanzooError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
        self.fast = FastOptions.resolve(self.device, config.precision, config.channels_last, config.fused, config.cuda_graphs, config.micro_batch)
        seed_everything(config.seed)
        self.gan: GAN = create_gan(config.arch, res=config.res, channels=config.channels, noise_dim=config.noise_dim).to(self.device)
        self.loss: GANLoss = build_loss(config.loss_name, **(config.loss_args or {}))
        self.data = data if data is not None else self._load_data()
        for message in self.loss.check_discriminator(self.gan.discriminator):
            warnings.warn(f"--loss {config.loss_name} with --arch {config.arch}: {message}", stacklevel=2)
        self.architecture = get_architecture(config.arch)
        # The architecture declares whether a sample's score depends on another's; augmentation
        # draws per batch, so it makes any critic batch-coupled.
        self.per_sample_critic = self.architecture.per_sample_critic and not config.augment
        self._apply_fast_options()
        self.rng = torch.Generator(self.device).manual_seed(config.seed)
        self.discriminator: nn.Module = self.gan.discriminator
        if config.augment:
            transform = build_augmentation(config.augment)
            self.discriminator = AugmentedDiscriminator(self.gan.discriminator, transform, self.rng)
        if self.fast.precision != "fp32":
            self.discriminator = FloatScores(self.discriminator)
        if config.ema:
            self.gan.generator_ema = copy.deepcopy(self.gan.generator).requires_grad_(False)
        self._ema_weight = torch.zeros((), device=self.device)
        lr = config.lr or self.loss.optimizer_defaults["lr"]
        betas = tuple(config.betas or self.loss.optimizer_defaults["betas"])
        adam: dict[str, Any] = {"fused": True} if self.fast.fused and self.device.type == "cuda" else {}
        self._graphs_wanted = self.fast.cuda_graphs and config.on_nan != "skip" and self.shard.world == 1
        if self._graphs_wanted:
            adam["capturable"] = True
        self.opt_g = torch.optim.Adam(self.gan.generator.parameters(), lr=lr, betas=betas, **adam)
        self.opt_d = torch.optim.Adam(self.gan.discriminator.parameters(), lr=lr, betas=betas, **adam)
        self._graphed: GraphedStep | None = None
        self.step = 0
        self.nan_skips = 0
        self.best_score: float | None = None
        if config.eval_every:
            for metric in get_metrics([config.eval_metric]).values():
                metric.ready()  # fail now, not after hours of training, if the metric cannot run
            self.eval_real = self._held_out()
        self._stop_signal: int | None = None
        self.batch_size = min(config.batch_size, len(self.data))
        if self.batch_size < config.batch_size:
            logger.warning("batch size %d > %d images: using batch size %d", config.batch_size, len(self.data), self.batch_size)
        if self.batch_size % self.shard.world:
            raise GanzooError(f"batch size {self.batch_size} is not divisible by the {self.shard.world} processes")
        self.real = self.data.images.to(self.device)
        self.mean_std = self.data.mean_std() if config.normalize == "torch" else (0.5, 0.5)
        self.gan.normalization = Normalization(*self.mean_std)  # saved with the model; sample() undoes it
        self.out = Path(config.out or default_run_dir(config.arch, config.res))
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def _apply_fast_options(self) -> None:
        """Layout, kernels and process-group changes that leave the state_dict's keys alone."""
        if self.shard.world > 1:
            distributed.globalize_batch_norms(self.gan)
            distributed.broadcast_module(self.gan)
        if self.fast.fused:
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = True
            if self.architecture.fast_layer_swaps:
                swap_instance_norms(self.gan.discriminator)
                if self.device.type == "cuda":
                    swap_thin_convs(self.gan.discriminator)
            self.loss.joint_pass = self.per_sample_critic
        if self.fast.channels_last:
            self.gan.to(memory_format=torch.channels_last)

    def _load_data(self, part: str = "train") -> ImageSet:
        """The train part of the data's split (every image without one); "holdout" for --eval-every."""
        c = self.config
        prep = Preprocessing(resolution=c.res, clahe=c.clahe, clahe_clip=c.clahe_clip, clahe_tile=c.clahe_tile)
        options = DatasetOptions(path=c.data, label=c.label, max_images=c.images if part == "train" else None, preprocessing=prep,
                                 seed=c.data_seed, window=c.window, part=part, split=c.split)
        return load_dataset(c.dataset_name, options)

    def _held_out(self) -> ImageSet:
        """What --eval-every scores against: the held-out part, else the training images (said so)."""
        if self.data.part == "train":
            return self._load_data("holdout")
        warn_if_training_images(self.data)
        return self.data

    # -- schedule -------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        return max(1, len(self.data) // self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """One epoch is one pass of the discriminator over the data."""
        return max(1, self.batches_per_epoch // self.loss.n_critic)

    @property
    def total_steps(self) -> int:
        c = self.config
        return c.steps if c.steps is not None else (c.epochs or DEFAULT_EPOCHS) * self.steps_per_epoch

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    def batch_indices(self, batch_number: int) -> torch.Tensor:
        """Indices of the `batch_number`-th real batch: a seeded permutation per data pass."""
        data_pass, position = divmod(batch_number, self.batches_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != data_pass:
            rng = torch.Generator().manual_seed(derived_seed(self.config.seed, data_pass))
            self._epoch_order = (data_pass, torch.randperm(len(self.data), generator=rng))
        start = position * self.batch_size
        return self._epoch_order[1][start : start + self.batch_size].to(self.device)

    def noise(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.gan.noise_dim, 1, 1, generator=self.rng, device=self.device)
        if self.config.noise_factor:
            z = z + self.config.noise_factor * torch.randn(z.shape, generator=self.rng, device=self.device)
        return z

    def real_batch(self, batch_number: int) -> torch.Tensor:
        """This process's share of the `batch_number`-th real batch, as model input."""
        return self._model_input(self.shard.slice(self.batch_indices(batch_number)))

    def _model_input(self, indices: torch.Tensor) -> torch.Tensor:
        x = to_model_input(self.real[indices], self.gan.channels, self.config.normalize, self.mean_std)
        return x.contiguous(memory_format=self.fast.memory_format())

    def _noise_share(self) -> torch.Tensor:
        """Noise for the global batch (so the draws match one process), this rank's rows."""
        return self.shard.slice(self.noise(self.batch_size))

    # -- the loop ---------------------------------------------------------------------
    def update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * generator, weights and BatchNorm statistics (ganzoo/ema.py);
        d is set before each step by `set_ema_decay` (a tensor, so CUDA graphs replay it)."""
        update_ema(self.gan.generator_ema, self.gan.generator, self._ema_weight)

    def set_ema_decay(self) -> None:
        """The coming step's EMA decay: 0 before ema_start, then min(ema, (1 + t) / (ema_warmup + t)) counted from it."""
        if self.config.ema:
            self._ema_weight.fill_(1.0 - ema_decay(self.config.ema, self.config.ema_warmup, self.step, self.config.ema_start))

    def fit(self, on_progress: Callable[[dict[str, Any]], None] | None = None, quiet: bool = False) -> Path:
        """Train to `total_steps`, logging, sampling and checkpointing; returns the last checkpoint.

        Each log record also goes to `on_progress` when given; otherwise progress shows as a
        bar on a terminal and as a plain line every 30 s elsewhere (neither with `quiet`).
        SIGINT/SIGTERM finish the current step, write a checkpoint and stop.
        """
        c = self.config
        main = self.shard.is_main
        if main:
            prepare_output_dir(self.out)
        total = self.total_steps
        window = LossWindow()
        last_checkpoint: Path | None = None
        quiet = quiet or not main
        if not quiet:
            logger.info("training %s (%s loss) on %d images for %d steps -> %s", c.arch, c.loss_name, len(self.data), total, self.out)
            logger.info("%s", self.epoch_definition())
        log_path = self.out / "log.jsonl" if main else Path(os.devnull)
        lines = ProgressLines(total, self.steps_per_epoch, self.step) if not quiet and on_progress is None and not console.is_terminal else None
        started, start_step, record = time.perf_counter(), self.step, {}
        with progress(quiet=quiet or on_progress is not None) as bar, open(log_path, "a") as log, self._stop_on_signals():
            task = bar.add_task("training", total=total, completed=self.step)
            while self.step < total:
                window.add(self.training_step(), self.batch_size * self.loss.n_critic)
                if self.device.type == "cpu" or c.on_nan == "skip":
                    self._check_finite(window.latest)
                epoch_done = self.step % self.steps_per_epoch == 0
                finished = self.step == total
                if self.step % c.log_every == 0 or finished or epoch_done:
                    record = {"step": self.step, "epoch": self.step / self.steps_per_epoch, **window.flush(), "nan_skips": self.nan_skips}
                    self._check_finite(record)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    bar.update(task, description=f"epoch {self.epoch} d {record.get('d_loss', math.nan):.3f} g {record.get('g_loss', math.nan):.3f} {record['images_per_s']:.0f} img/s")
                    if on_progress is not None:
                        on_progress(record)
                    if lines is not None and (text := lines.line(record, force=finished)):
                        console.print(escape(text), highlight=False, soft_wrap=True)
                bar.update(task, completed=self.step)
                if main and (finished or (epoch_done and c.sample_every and self.epoch % c.sample_every == 0)):
                    self.save_grid(self.out / "samples" / f"step-{self.step:08d}.png")
                if c.eval_every and (finished or (epoch_done and self.epoch % c.eval_every == 0)):
                    distributed.on_main(lambda: self.evaluate(log))  # the other ranks wait at a long barrier
                if finished or (epoch_done and c.checkpoint_every and self.epoch % c.checkpoint_every == 0):
                    last_checkpoint = self.save()
                if self._stop_signal is not None:
                    saved = self.save()
                    raise TrainingInterrupted(
                        f"stopped by {signal.Signals(self._stop_signal).name} at step {self.step}; "
                        f"checkpoint saved at {saved}; continue with --resume {self.out}",
                        exit_code=128 + self._stop_signal,
                    )
        final = last_checkpoint or self.save()
        if main:
            curve = write_loss_curve(log_path, self.out / LOSS_CURVE_FILE)
            if not quiet:
                self._summary(time.perf_counter() - started, self.step - start_step, record, final, curve)
        return final

    def epoch_definition(self) -> str:
        """What one epoch is for this run, in the numbers the user sees."""
        critic_batches = self.steps_per_epoch * self.loss.n_critic
        images = critic_batches * self.batch_size
        return (
            f"one epoch = {self.steps_per_epoch} generator step(s) x {self.loss.n_critic} critic batch(es) of {self.batch_size} "
            f"= {images} real images = {images / len(self.data):.2f} pass(es) over the {len(self.data)} images"
        )

    def _summary(self, seconds: float, steps: int, record: dict[str, Any], checkpoint: Path, curve: Path | None) -> None:
        losses = ", ".join(f"{k} {record[k]:.4g}" for k in ("d_loss", "g_loss") if k in record)
        rate = steps * self.batch_size * self.loss.n_critic / max(seconds, 1e-9)
        console.print(escape(
            f"trained {steps} step(s) in {format_seconds(seconds)} ({rate:.0f} img/s); final {losses or 'losses not logged'}\n"
            f"  checkpoint: {checkpoint}\n  samples:    {self.out / 'samples'}\n  log:        {self.out / 'log.jsonl'}"
            + (f"\n  loss curve: {curve}" if curve else "")
        ), highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into a flag checked after each step (main thread only)."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            self._stop_signal = signum

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check_finite(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float, torch.Tensor)) and not math.isfinite(float(value)):
                raise TrainingDiverged(
                    f"{key} became {float(value)} at step {self.step}; the last good checkpoint in {self.out} is kept. "
                    "Try a lower --lr, a different --loss, --normalize none, or --on-nan skip"
                )

    # -- outputs ------------------------------------------------------------------------
    @torch.no_grad()
    def save_grid(self, path: Path) -> None:
        """A fixed-noise sample grid (the same noise at every save, so grids are comparable)."""
        write_grid(path, to_uint8(self.gan.sample(GRID_SIZE, seed=self.config.seed)))

    def checkpoint_config(self) -> dict[str, Any]:
        c = self.config
        return {
            "format_version": FORMAT_VERSION,
            "ganzoo_version": __version__,
            "architecture": c.arch,
            "model_args": dict(self.gan.model_args),
            "loss": c.loss_name,
            "loss_args": self.loss.loss_args(),
            "training": {**c.to_dict(), "batch_size_used": self.batch_size},
            "dataset": {**self.data.describe(), "label": c.label, "path": c.data, "split": describe_split(split_file_for(c.data, c.split))},
            "plugins": plugin_versions(),
            "provided_by": {"architectures": provenance("architectures", c.arch), "losses": provenance("losses", c.loss_name)},
            "versions": environment_versions(),
            "progress": {"step": self.step, "epoch": self.epoch, "steps_per_epoch": self.steps_per_epoch},
        }

    def save(self, directory: Path | None = None, metrics: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint atomically (default checkpoints/step-N, then `last` points at it).

        Weights that are not finite are never saved, so the last checkpoint stays a good one.
        """
        for name, tensor in self.gan.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingDiverged(
                    f"weight {name} is not finite at step {self.step}; nothing saved, the last good checkpoint "
                    f"in {self.out} is kept. Try a lower --lr or --on-nan skip"
                )
        periodic = directory is None
        directory = directory or self.out / "checkpoints" / f"step-{self.step:08d}"
        if not self.shard.is_main:
            return directory
        tensors, state = self.trainer_state()
        config = {**self.checkpoint_config(), **({"metrics": metrics} if metrics else {})}
        card_extra = {"metrics": metrics} if metrics else None
        try:
            write_checkpoint(directory, self.gan, config, model_card(config, card_extra), state_tensors=tensors, state_json=state)
            if periodic:
                tmp_link = self.out / f".last.{self.step}.tmp"
                tmp_link.unlink(missing_ok=True)
                tmp_link.symlink_to(Path("checkpoints") / directory.name)
                tmp_link.replace(self.out / "last")
        except OSError as error:
            previous = (self.out / "last").resolve() if (self.out / "last").exists() else None
            raise GanzooError(
                f"could not write checkpoint {directory}: {error.strerror or error}; "
                + (f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists")
            ) from None
        if periodic:
            for old in sorted((self.out / "checkpoints").glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        return directory

    def evaluate(self, log: Any) -> None:
        """`eval_metric` against the held-out images (`_held_out`); the best score so far is kept as `best/`."""
        c = self.config
        name = c.eval_metric
        metric = get_metrics([name])[name]
        report = evaluate_metrics(self.gan, self.eval_real, metrics=(name,), n=c.eval_n or len(self.data), seed=c.seed, device=self.device)
        result = report["metrics"][name]
        value = float(result["value"])
        record = {"step": self.step, "epoch": self.step / self.steps_per_epoch, name: value, f"{name}_n_fake": result["n_fake"],
                  f"{name}_n_real": result.get("n_real"), f"{name}_real": report["real"]}
        log.write(json.dumps(record) + "\n")
        log.flush()
        logger.info("step %d: %s %.4g (%d generated vs %s %s real images)", self.step, name, value, result["n_fake"], result.get("n_real", "no"),
                    "held-out" if self.eval_real.part == "holdout" else "training")
        better = self.best_score is None or (value < self.best_score if metric.lower_is_better else value > self.best_score)
        if better:
            self.best_score = value
            scored = {"value": value, "n_fake": result["n_fake"], "n_real": result.get("n_real"), "real": report["real"], "step": self.step}
            self.save(self.out / "best", metrics={name: scored})

    def trainer_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Optimizer tensors and RNG states (safetensors) plus counters (JSON): no pickle."""
        counters = {"step": self.step, "epoch": self.epoch, "nan_skips": self.nan_skips, "best_score": self.best_score}
        return collect_state(counters, self.rng, {"opt_g": self.opt_g, "opt_d": self.opt_d})

    def load_state(self, checkpoint: Path) -> None:
        """Restore weights, optimizers, counters and RNG from a checkpoint for an exact resume."""
        self.gan.load_state_dict(load_gan(checkpoint, device=self.device).state_dict())
        counters = restore_state(checkpoint, self.device, self.rng, {"opt_g": self.opt_g, "opt_d": self.opt_d})
        self.nan_skips = int(counters.get("nan_skips", 0))
        self.best_score = counters.get("best_score", counters.get("best_fid"))
        self.step = int(counters["step"])
