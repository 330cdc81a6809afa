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
import random
import shutil
import signal
import threading
import time
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from . import distributed
from .augment import AugmentedDiscriminator, build_augmentation
from .card import model_card
from .checkpoint import (
    CONFIG_FILE,
    FORMAT_VERSION,
    STATE_JSON_FILE,
    STATE_TENSORS_FILE,
    find_resume_checkpoint,
    has_checkpoint,
    load_gan,
    read_tensors,
    write_checkpoint,
)
from .config import DEFAULT_EPOCHS, TrainConfig
from .console import logger, progress
from .data import DatasetOptions, ImageSet, Preprocessing, load_dataset, to_model_input
from .evaluation import evaluate as evaluate_metrics
from .evaluation import get_metrics
from .images import to_uint8, write_grid
from .errors import CheckpointError, GanzooError, TrainingDiverged, TrainingInterrupted
from .fast import PRECISIONS, FastOptions, FloatScores, GraphedStep, frozen, swap_instance_norms, swap_thin_convs
from .losses import GANLoss, build_loss
from .models import GAN, create_gan, has_batch_norm
from .plugins import plugin_versions
from .runtime import environment_versions, resolve_device, seed_everything
from .version import __version__

GRID_SIZE = 64
RESUMABLE_OVERRIDES = (
    "epochs", "steps", "device", "sample_every", "checkpoint_every", "keep_checkpoints", "log_every", "on_nan", "eval_every", "eval_n",
    "precision", "channels_last", "fused", "cuda_graphs", "micro_batch",
)


class Trainer:
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
        self.loss: GANLoss = build_loss(config.loss_name, **self._loss_kwargs())
        self.data = data if data is not None else self._load_data()
        for message in self.loss.check_discriminator(self.gan.discriminator):
            warnings.warn(f"--loss {config.loss_name} with --arch {config.arch}: {message}", stacklevel=2)
        # No sample's score depends on another's (no BatchNorm, no augmentation): the critic may
        # see real and fake in one pass, and a batch in chunks.
        self.per_sample_critic = not has_batch_norm(self.gan.discriminator) and not config.augment
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
        self.best_fid: float | None = None
        if config.eval_every:
            for metric in get_metrics([config.eval_metric]).values():
                metric.ready()  # fail now, not after hours of training, if the metric cannot run
        self._stop_signal: int | None = None
        self.batch_size = min(config.batch_size, len(self.data))
        if self.batch_size < config.batch_size:
            logger.warning("batch size %d > %d images: using batch size %d", config.batch_size, len(self.data), self.batch_size)
        if self.batch_size % self.shard.world:
            raise GanzooError(f"batch size {self.batch_size} is not divisible by the {self.shard.world} processes")
        self.real = self.data.images.to(self.device)
        self.mean_std = self.data.mean_std() if config.normalize == "torch" else (0.5, 0.5)
        self.out = Path(config.out or default_run_dir(config))
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def _apply_fast_options(self) -> None:
        """Layout, kernels and process-group changes that leave the state_dict's keys alone."""
        if self.shard.world > 1:
            distributed.globalize_batch_norms(self.gan)
            distributed.broadcast_module(self.gan)
        if self.fast.fused:
            swap_instance_norms(self.gan.discriminator)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = True
                swap_thin_convs(self.gan.discriminator)
            if hasattr(self.loss, "joint_pass") and self.per_sample_critic:
                self.loss.joint_pass = True
        if self.fast.channels_last:
            self.gan.to(memory_format=torch.channels_last)

    def _load_data(self) -> ImageSet:
        c = self.config
        prep = Preprocessing(resolution=c.res, clahe=c.clahe, clahe_clip=c.clahe_clip, clahe_tile=c.clahe_tile)
        options = DatasetOptions(path=c.data, label=c.label, max_images=c.images, preprocessing=prep, seed=c.data_seed)
        return load_dataset(c.dataset_name, options)

    def _loss_kwargs(self) -> dict[str, Any]:
        c = self.config
        named = {k: v for k, v in {"n_critic": c.n_critic, "gp_lambda": c.gp_lambda}.items() if v is not None}
        return {**(c.loss_args or {}), **named}

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
            rng = torch.Generator().manual_seed(self.config.seed * 1_000_003 + data_pass)
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
    def training_step(self) -> dict[str, torch.Tensor] | None:
        """n_critic discriminator updates, then one generator update; returns detached losses.

        With `on_nan="skip"` an update whose loss is not finite is skipped (and counted) and
        None is returned; otherwise non-finite values are caught by the caller.
        """
        n_critic = self.loss.n_critic
        if self._graphs_wanted:
            return self._graphed_step()
        losses, skipped = self._iteration(lambda k: self.real_batch(self.step * n_critic + k))
        self.step += 1
        if skipped:
            self.nan_skips += 1
            logger.warning("non-finite loss at step %d: update skipped (--on-nan skip)", self.step)
            return None
        return losses

    def _iteration(self, real_for: Any) -> tuple[dict[str, torch.Tensor], bool]:
        """The updates of one step, without host synchronisation unless `on_nan` is skip."""
        G, D = self.gan.generator, self.discriminator
        skipped = False
        for k in range(self.loss.n_critic):
            real = real_for(k)
            with torch.no_grad(), self.fast.autocast(self.device):
                fake = G(self._noise_share())
            d_loss, parts, skip = self._update(self.opt_d, self._discriminator_terms(D, real, fake))
            skipped |= skip
        with frozen(D):
            g_loss, _, skip = self._update(self.opt_g, self._generator_terms(G, D))
            skipped |= skip
        if self.gan.generator_ema is not None:
            self.update_ema()
        return {"d_loss": d_loss, "g_loss": g_loss, **parts}, skipped

    def _discriminator_terms(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """The loss's terms, in chunks of `micro_batch` images (each weighted by its share of the
        batch) where both the critic and the loss are per-sample."""
        chunks = real.shape[0] // self.fast.micro_batch if self.fast.micro_batch else 1
        if chunks < 2 or not (self.loss.per_sample and self.per_sample_critic):
            yield from self.loss.discriminator_terms(D, real, fake, self.rng)
            return
        draws = distributed.ChunkDraws(real.shape[0])  # row i's random numbers as in one unchunked pass
        offset = 0
        for real_chunk, fake_chunk in zip(real.tensor_split(chunks), fake.tensor_split(chunks)):
            share = real_chunk.shape[0] / real.shape[0]
            for term, parts in draws.chunk(offset, self.loss.discriminator_terms(D, real_chunk, fake_chunk, self.rng)):
                yield term * share, {name: value * share for name, value in parts.items()}
            offset += real_chunk.shape[0]

    def _generator_terms(self, G: nn.Module, D: nn.Module) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        yield self.loss.generator_loss(D, G(self._noise_share())), {}

    def _update(self, optimizer: torch.optim.Optimizer, terms: Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """One optimizer step on a loss given as terms, each built under autocast and backwarded
        before the next; returns the detached loss, its parts and whether a non-finite term
        made `on_nan="skip"` skip the update.

        Under torchrun every rank takes the same decision: the ranks' finiteness flags are
        all-reduced with the gradients; all skip together, and with `on_nan="stop"` a
        non-finite loss on any rank makes every rank's loss NaN, so all stop at the same check.
        """
        optimizer.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        shared = self.shard.world > 1
        finite: torch.Tensor | None = None
        while True:
            with self.fast.autocast(self.device):
                term = next(terms, None)
            if term is None:
                break
            loss, term_parts = term
            if shared:  # no early return: the other ranks' forwards and all-reduces need this rank
                finite = torch.isfinite(loss.detach()) if finite is None else finite & torch.isfinite(loss.detach())
            elif self.config.on_nan == "skip" and not bool(torch.isfinite(loss)):
                optimizer.zero_grad(set_to_none=True)
                return loss.detach(), parts, True
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
            for name, value in term_parts.items():
                parts[name] = parts[name] + value if name in parts else value
        if total is None:
            raise GanzooError(f"loss {self.config.loss_name!r} yielded no terms to train on")
        if shared:
            params = (p for group in optimizer.param_groups for p in group["params"])
            everywhere = distributed.average_gradients(params, self.shard.world, finite)
            if self.config.on_nan == "skip" and not bool(everywhere):
                optimizer.zero_grad(set_to_none=True)
                return total, parts, True
            total = torch.where(everywhere, total, torch.full_like(total, math.nan))
        optimizer.step()
        return total, parts, False

    def _graphed_step(self) -> dict[str, torch.Tensor]:
        """One step through a CUDA graph; a capture that fails falls back to eager steps for good."""
        n_critic = self.loss.n_critic
        indices = torch.stack([self.batch_indices(self.step * n_critic + k) for k in range(n_critic)])
        if self._graphed is None:
            static = torch.empty_like(indices)
            self._graphed = GraphedStep(lambda idx: self._iteration(lambda k: self._model_input(idx[k]))[0], static, [self.rng])
        try:
            losses = self._graphed(indices)
        except Exception as error:  # capture is best effort: any failure means eager from here on
            logger.warning("CUDA graph capture failed (%s: %s); continuing without CUDA graphs", type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            torch.cuda.synchronize(self.device)
            self._graphs_wanted = False
            self._graphed = None
            for opt in (self.opt_g, self.opt_d):
                opt.zero_grad(set_to_none=True)
            return self.training_step()
        self.step += 1
        return losses

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights; buffers (BatchNorm statistics) copied."""
        ema, G = self.gan.generator_ema, self.gan.generator
        for p_ema, p in zip(ema.parameters(), G.parameters()):
            p_ema.lerp_(p, 1.0 - self.config.ema)
        for b_ema, b in zip(ema.buffers(), G.buffers()):
            b_ema.copy_(b)

    def fit(self) -> Path:
        """Train to `total_steps`, logging, sampling and checkpointing; returns the last checkpoint.

        SIGINT/SIGTERM finish the current step, write a checkpoint and stop.
        """
        c = self.config
        main = self.shard.is_main
        if main:
            prepare_output_dir(self.out)
        total = self.total_steps
        window = LossWindow()
        last_checkpoint: Path | None = None
        logger.info("training %s (%s loss) on %d images for %d steps (%d per epoch) -> %s", c.arch, c.loss_name, len(self.data), total, self.steps_per_epoch, self.out)
        log_path = self.out / "log.jsonl" if main else Path(os.devnull)
        with progress() as bar, open(log_path, "a") as log, self._stop_on_signals():
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
        return last_checkpoint or self.save()

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
            "dataset": {**self.data.describe(), "label": c.label, "path": c.data},
            "plugins": plugin_versions(),
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
        """The `eval_metric` against the training images; the best so far is kept as `best/`."""
        c = self.config
        n = c.eval_n or len(self.data)
        report = evaluate_metrics(self.gan, self.data, metrics=("fid",), n=n, seed=c.seed, device=self.device)
        fid = report["metrics"]["fid"]
        record = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "fid": float(fid["value"]), "fid_n_fake": fid["n_fake"], "fid_n_real": fid["n_real"]}
        log.write(json.dumps(record) + "\n")
        log.flush()
        logger.info("step %d: FID %.2f (%d generated vs %d real images)", self.step, record["fid"], fid["n_fake"], fid["n_real"])
        if self.best_fid is None or record["fid"] < self.best_fid:
            self.best_fid = record["fid"]
            self.save(self.out / "best", metrics={"fid": {"value": record["fid"], "n_fake": fid["n_fake"], "n_real": fid["n_real"], "step": self.step}})

    def trainer_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Optimizer tensors and RNG states (safetensors) plus counters (JSON): no pickle."""
        np_state = np.random.get_state()
        tensors: dict[str, torch.Tensor] = {
            "rng.loop": self.rng.get_state(),
            "rng.torch": torch.get_rng_state(),
            "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        }
        if torch.cuda.is_available():
            for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = cuda_state
        py_state = random.getstate()
        state: dict[str, Any] = {
            "step": self.step,
            "epoch": self.epoch,
            "nan_skips": self.nan_skips,
            "best_fid": self.best_fid,
            "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        }
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            for pid, pstate in sd["state"].items():
                for key, value in pstate.items():
                    tensors[f"{name}.{pid}.{key}"] = value
            state[name] = {"param_groups": sd["param_groups"], "state_keys": {str(p): sorted(s) for p, s in sd["state"].items()}}
        return tensors, state

    def load_state(self, checkpoint: Path) -> None:
        """Restore weights, optimizers, counters and RNG from a checkpoint for an exact resume."""
        loaded = load_gan(checkpoint, device=self.device)
        self.gan.load_state_dict(loaded.state_dict())
        if not (checkpoint / STATE_TENSORS_FILE).exists():
            raise CheckpointError(f"{checkpoint} holds no trainer state (was it pushed to a hub?); it cannot be resumed")
        state = json.loads((checkpoint / STATE_JSON_FILE).read_text())
        tensors = read_tensors(checkpoint / STATE_TENSORS_FILE)
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            saved = state[name]
            params = [p for group in opt.param_groups for p in group["params"]]
            opt_state = {
                int(pid): {key: like_param(tensors.pop(f"{name}.{pid}.{key}").to(self.device), params[int(pid)]) for key in keys}
                for pid, keys in saved["state_keys"].items()
            }
            opt.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
        self.rng.set_state(tensors.pop("rng.loop"))
        torch.set_rng_state(tensors.pop("rng.torch"))
        name, pos, has_gauss, cached = state["rng_numpy"]
        np.random.set_state((name, tensors.pop("rng.numpy").numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["rng_python"]
        random.setstate((version, tuple(internal), gauss))
        cuda_states = [tensors.pop(k) for k in sorted(k for k in list(tensors) if k.startswith("rng.cuda."))]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
        self.nan_skips = int(state.get("nan_skips", 0))
        self.best_fid = state.get("best_fid")
        if tensors:
            raise CheckpointError(f"{checkpoint}: unexpected trainer-state tensors {sorted(tensors)[:3]}")
        self.step = int(state["step"])


def like_param(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Optimizer state in its parameter's memory layout (fused Adam wants them alike)."""
    if value.shape != param.shape:
        return value
    return torch.empty_like(param, dtype=value.dtype).copy_(value)


class LossWindow:
    """Losses summed on the device and read back once per log line: no per-step host sync."""

    def __init__(self) -> None:
        self.latest: dict[str, torch.Tensor] = {}
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counted = self.images = 0
        self.start = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor] | None, images: int) -> None:
        self.images += images
        self.latest = values or {}
        if values:
            self.counted += 1
            for key, value in values.items():
                self.sums[key] = self.sums[key] + value if key in self.sums else value

    def flush(self) -> dict[str, float]:
        """Mean of each loss since the last flush, and images per second."""
        record = {key: float(value) / self.counted for key, value in self.sums.items()}
        record["images_per_s"] = self.images / max(time.perf_counter() - self.start, 1e-9)
        self._reset()
        return record


def prepare_output_dir(out: Path) -> None:
    """Create the run directory and prove it is writable before any training time is spent."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise GanzooError(f"cannot write to output directory {out}: {error.strerror or error}") from None


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.arch}-{config.res}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def resume_config(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """The saved run's config with the user's allowed overrides (e.g. more epochs)."""
    checkpoint = find_resume_checkpoint(config.resume)
    saved = json.loads((checkpoint / CONFIG_FILE).read_text())["training"]
    saved.pop("batch_size_used", None)
    defaults = TrainConfig()
    overrides = {}
    for key, value in config.to_dict().items():
        if key in ("resume", "out") or value == getattr(defaults, key) or value == saved.get(key):
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise GanzooError(f"--{key.replace('_', '-')} cannot change on --resume (saved: {saved.get(key)!r}, given: {value!r})")
        overrides[key] = value
    if "epochs" in overrides:
        saved["steps"] = None
    if "steps" in overrides:
        saved["epochs"] = None
    merged = TrainConfig.from_dict({**saved, **overrides, "resume": None})
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return replace(merged, out=str(run_dir)), checkpoint


def train(config: TrainConfig | dict[str, Any]) -> Path:
    """Train (or resume) a GAN; returns the final checkpoint directory."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    checkpoint = None
    if config.resume == "auto":
        if not config.out:
            raise GanzooError("--resume auto needs --out RUN_DIR (the run to continue, or to start)")
        if not has_checkpoint(Path(config.out)):
            logger.info("no checkpoint in %s yet: starting a new run", config.out)
        config = replace(config, resume=config.out if has_checkpoint(Path(config.out)) else None)
    if config.resume:
        config, checkpoint = resume_config(config)
    trainer = Trainer(config)
    if checkpoint is not None:
        trainer.load_state(checkpoint)
        logger.info("resumed from %s at step %d", checkpoint, trainer.step)
    try:
        return trainer.fit()
    finally:
        if trainer.shard.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
