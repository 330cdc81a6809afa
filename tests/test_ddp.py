"""torchrun with 2 CPU processes (gloo) follows the single-process run with the same global batch,
and every rank takes the same decisions (skip, stop, wait for rank 0's evaluation)."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ganzoo.distributed import ChunkDraws, GlobalBatchNorm2d, Shard, batch_norm_statistics, globalize_batch_norms, per_sample_rand
from ganzoo.errors import GanzooError

COMMON = ["train", "--images", "8", "--batch-size", "8", "--device", "cpu", "--checkpoint-every", "1", "--no-channels-last"]
ARGS = [*COMMON, "--arch", "wgan-gp", "--n-critic", "1"]
# NCHW kernels: oneDNN's channels_last convolutions round differently at batch 4 and 8, and
# the penalty's double backward amplifies that past what this comparison of sharding allows.
LR = 1e-4


def env(tmp_path):
    return {**os.environ, "GANZOO_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}


def torchrun(tmp_path, *args, ganzoo_args=ARGS):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ganzoo", *ganzoo_args, *args]
    result = subprocess.run(cmd, env=env(tmp_path), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]


def tensors(checkpoint):
    return load_file(str(checkpoint / "model.safetensors")), load_file(str(checkpoint / "trainer_state.safetensors"))


needs_distributed = pytest.mark.skipif(not torch.distributed.is_available() or shutil.which("true") is None, reason="torch.distributed unavailable")


@needs_distributed
def test_two_processes_match_one_and_resume(tmp_path):
    single = tmp_path / "single"
    subprocess.run([sys.executable, "-m", "ganzoo", *ARGS, "--steps", "2", "--out", str(single)], env=env(tmp_path), check=True, capture_output=True)
    ddp = tmp_path / "ddp"
    torchrun(tmp_path, "--steps", "1", "--out", str(ddp))
    torchrun(tmp_path, "--steps", "2", "--resume", str(ddp))

    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    assert [line.count('"step"') for line in (ddp / "log.jsonl").read_text().splitlines()] == [1, 1]

    # After one step the gradients (Adam's exp_avg, beta1 = 0) agree to float rounding.
    w1, s1 = tensors(single / "checkpoints" / "step-00000001")
    w2, s2 = tensors(ddp / "checkpoints" / "step-00000001")
    for key in s1:
        if ".exp_avg" in key:
            assert torch.allclose(s1[key], s2[key], atol=1e-4 * float(s1[key].abs().max()), rtol=0), key
    # Adam's first steps are lr * sign(grad): a gradient that is zero up to rounding can flip
    # sign, so a few weights differ by up to 2 lr per step; all others agree to 1e-5.
    for step, (wa, wb) in enumerate([(w1, w2), (tensors(single / "last")[0], tensors(ddp / "last")[0])], start=1):
        diffs = torch.cat([(wa[k].double() - wb[k].double()).abs().flatten() for k in wa if wa[k].is_floating_point()])
        assert float(diffs.max()) <= 2 * LR * step + 1e-6
        assert float((diffs > 1e-5).double().mean()) < (1e-4 if step == 1 else 5e-3)


def max_and_share_changed(a, b, atol=1e-5):
    """The largest weight difference, and the share of weights that differ by more than atol."""
    diffs = torch.cat([(a[k].double() - b[k].double()).abs().flatten() for k in a if a[k].is_floating_point()])
    return float(diffs.max()), float((diffs > atol).double().mean())


# name: (options, Adam lr). Under the old per-chunk and per-rank draws the critic's first
# gradients differed by 1-100% and weights by up to 0.14 after two steps.
MATCH_CASES = {
    # The penalty's interpolation weights per critic micro-batch of 2 (4 chunks in one process,
    # 2 per rank), n_critic 2.
    "wgan-gp-micro-batches": (["--arch", "wgan-gp", "--n-critic", "2", "--micro-batch", "2"], 1e-4),
    # BatchNorm statistics over the global batch, and DiffAugment's per-image draws.
    "dcgan-diffaugment": (["--arch", "dcgan", "--augment", "diffaugment"], 2e-4),
}


@needs_distributed
@pytest.mark.parametrize("case", MATCH_CASES)
def test_two_processes_draw_like_one(tmp_path, case):
    options, lr = MATCH_CASES[case]
    args = [*COMMON, *options, "--steps", "2"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, "-m", "ganzoo", *args, "--out", str(single)], env=env(tmp_path), check=True, capture_output=True)
    torchrun(tmp_path, "--out", str(ddp), ganzoo_args=args)

    # Every gradient of the first step (Adam's exp_avg) agrees to float rounding: measured
    # within 1e-5 (wgan-gp) and 1.5e-5 (dcgan) of each tensor's largest entry.
    s1, s2 = (tensors(run / "checkpoints" / "step-00000001")[1] for run in (single, ddp))
    for key in (k for k in s1 if k.endswith(".exp_avg")):
        assert torch.allclose(s1[key], s2[key], atol=1e-4 * float(s1[key].abs().max()), rtol=0), key
    # Adam moves a weight by up to lr per step whatever its gradient's size, so a gradient that is
    # zero up to rounding can flip a weight's step, and the second step's gradients follow: after
    # two steps weights differ by up to 2 lr per step (measured 0.69 and 0.49 of that bound), and
    # 0.1-3.4% of them by more than 1e-5.
    largest, changed = max_and_share_changed(tensors(single / "last")[0], tensors(ddp / "last")[0])
    assert largest <= 2 * lr * 2 + 1e-6 and changed < 0.1


def run_worker(tmp_path, config):
    """tests/ddp_worker.py under torchrun; what each rank reported."""
    out = tmp_path / "ranks"
    out.mkdir()
    config = {"arch": "dcgan", "loss": "nan-on-rank", "images": 4, "batch_size": 4, "device": "cpu", "channels_last": False, "out": str(tmp_path / "run"), **config}
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker), str(out), json.dumps(config)]
    result = subprocess.run(cmd, env=env(tmp_path), capture_output=True, text=True, timeout=180)
    reports = [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(2) if (out / f"rank-{rank}.json").exists()]
    assert len(reports) == 2, result.stderr[-3000:]
    return reports


@needs_distributed
def test_a_nan_on_one_rank_is_skipped_by_all_and_they_wait_for_evaluation(tmp_path):
    config = {"steps": 3, "on_nan": "skip", "loss_args": {"nan_rank": 1, "nan_at": 2}, "eval_every": 1, "eval_metric": "slow-test"}
    rank0, rank1 = run_worker(tmp_path, config)
    for report in (rank0, rank1):
        assert report["error"] is None and report["step"] == 3 and report["nan_skips"] == 1
    assert rank0["weights"] == rank1["weights"]
    # Rank 0 evaluates after every step (one step per epoch); rank 1 starts its next step only then.
    evaluated = [t for what, _, t in rank0["events"] if what == "eval_done"]
    started = [t for what, _, t in rank1["events"] if what == "step_start"]
    assert len(evaluated) == 3 and len(started) == 3
    assert all(start >= done for start, done in zip(started[1:], evaluated))


@needs_distributed
def test_a_nan_on_one_rank_stops_every_rank(tmp_path):
    # In the step's last update, so that the other rank's own losses of that step are finite.
    loss_args = {"nan_rank": 1, "nan_at": 2, "nan_in": "generator"}
    rank0, rank1 = run_worker(tmp_path, {"steps": 3, "on_nan": "stop", "loss_args": loss_args})
    assert rank0["error"] == rank1["error"] == "TrainingDiverged"
    assert rank0["step"] == rank1["step"] == 2


# -- per-sample draws and GlobalBatchNorm2d's statistics, in one process --------------------


def test_chunks_and_ranks_get_their_rows_of_one_global_draw():
    reference = torch.Generator().manual_seed(0)
    first, second = torch.rand(8, 1, 1, 1, generator=reference), torch.rand(8, 1, 1, 1, generator=reference)
    for rank in range(2):
        rng = torch.Generator().manual_seed(0)
        draws = ChunkDraws(4, Shard(rank, 2))

        def terms(n):
            for _ in range(2):  # two draws per chunk: the k-th draw of each chunk is one global draw
                yield per_sample_rand(n, rng, torch.device("cpu"), torch.float32)

        chunks = [list(draws.chunk(offset, terms(n))) for offset, n in ((0, 1), (1, 3))]
        assert torch.equal(torch.cat([chunk[0] for chunk in chunks]), first[rank * 4 : rank * 4 + 4])
        assert torch.equal(torch.cat([chunk[1] for chunk in chunks]), second[rank * 4 : rank * 4 + 4])
        assert torch.equal(rng.get_state(), reference.get_state())  # as if the global batch were drawn once
    assert per_sample_rand(3, torch.Generator().manual_seed(0), torch.device("cpu"), torch.float32).shape == (3, 1, 1, 1)


def two_ranks(bn, x, w):
    """A training forward and backward of `bn` with x's halves on two emulated ranks: their
    statistics stacked as all_gather stacks them, each rank with its own copy of the layer."""
    x = x.detach().clone().requires_grad_()
    halves = x.chunk(2)
    stats = torch.stack([batch_norm_statistics(half) for half in halves])
    ranks = [copy.deepcopy(bn) for _ in halves]
    y = torch.cat([rank.normalize(half, stats) for rank, half in zip(ranks, halves)])
    (y * w).sum().backward()
    return [y.detach(), x.grad, sum(r.weight.grad for r in ranks), sum(r.bias.grad for r in ranks)], ranks[0]


def one_process(bn, x, w, dtype):
    reference = nn.BatchNorm2d(bn.num_features, momentum=bn.momentum).to(dtype)
    reference.load_state_dict(bn.state_dict())
    x = x.detach().to(dtype).clone().requires_grad_()
    y = reference(x)
    (y * w.to(dtype)).sum().backward()
    return [y.detach(), x.grad, reference.weight.grad, reference.bias.grad], reference


def per_channel_error(got, truth):
    dims = (0, 2, 3) if truth.dim() == 4 else ()
    return (got.double() - truth).abs().amax(dim=dims) / truth.abs().amax(dim=dims).clamp(min=1e-30)


def test_global_batch_norm_is_as_accurate_as_batch_norm():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 4, 4, generator=g)
    x[:, 1] = 50 + 0.01 * x[:, 1]  # mean 5000 times the spread: E[x^2] - E[x]^2 came out negative
    x[:, 2] = 1000.1  # constant: variance 0
    w = torch.randn(8, 3, 4, 4, generator=g)
    bn = GlobalBatchNorm2d(3)
    nn.init.uniform_(bn.weight, 0.5, 1.5, generator=g)
    nn.init.uniform_(bn.bias, -1, 1, generator=g)
    truth, truth_bn = one_process(bn, x, w, torch.float64)
    plain, _ = one_process(bn, x, w, torch.float32)
    ours, ours_bn = two_ranks(bn, x, w)
    # Output, input gradient, weight and bias gradients per channel: finite, and no further from
    # float64 than nn.BatchNorm2d in float32 is (the old sums of squares gave NaN on channels 1-2).
    for got, reference, exact in zip(ours, plain, truth):
        assert torch.isfinite(got).all()
        assert (per_channel_error(got, exact) <= 2 * per_channel_error(reference, exact) + 1e-6).all()
    assert torch.allclose(ours_bn.running_mean.double(), truth_bn.running_mean, rtol=1e-6)
    assert torch.allclose(ours_bn.running_var.double(), truth_bn.running_var, rtol=1e-4, atol=1e-6)


def test_global_batch_norm_cumulative_average_when_momentum_is_none():
    bn, reference = GlobalBatchNorm2d(4, momentum=None), nn.BatchNorm2d(4, momentum=None)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(6, 4, 3, 3, generator=g) * 2 + 1
        reference(x)
        stats = torch.stack([batch_norm_statistics(half) for half in x.chunk(2)])
        bn.normalize(x[:3], stats)  # what rank 0 does
    assert int(bn.num_batches_tracked) == int(reference.num_batches_tracked) == 3
    assert torch.allclose(bn.running_mean, reference.running_mean, atol=1e-6)
    assert torch.allclose(bn.running_var, reference.running_var, atol=1e-5)


def test_global_batch_norm_keeps_the_input_dtype():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    bn = GlobalBatchNorm2d(3).double()
    (y, dx, *_), ours = two_ranks(bn, x, w)
    (y_ref, dx_ref, *_), reference = one_process(bn, x, w, torch.float64)
    assert y.dtype == torch.float64 and torch.allclose(y, y_ref, atol=1e-12) and torch.allclose(dx, dx_ref, atol=1e-12)
    assert torch.allclose(ours.running_var, reference.running_var, atol=1e-12)
    # bf16 activations (autocast) with fp32 parameters and buffers: bf16 out, fp32 statistics.
    bn = GlobalBatchNorm2d(3)
    stats = torch.stack([batch_norm_statistics(half) for half in x.bfloat16().chunk(2)])
    y16 = bn.normalize(x.bfloat16()[:2], stats)
    assert y16.dtype == torch.bfloat16 and bn.running_mean.dtype == torch.float32
    y32 = nn.BatchNorm2d(3)(x.bfloat16().float())[:2]
    assert torch.allclose(y16.float(), y32, atol=3e-2)


class KeepsForward(nn.BatchNorm2d):
    """A subclass that only changes a default: it can compute global statistics."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, momentum=0.2)


class OwnForward(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


def test_batch_norm_subclasses_are_converted_or_refused_by_name():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), KeepsForward(4), nn.Sequential(nn.BatchNorm2d(4)))
    subclassed, weight, keys = net[1], net[1].weight, list(net.state_dict())
    assert globalize_batch_norms(net) == 2
    assert net[1] is subclassed and isinstance(subclassed, GlobalBatchNorm2d) and isinstance(subclassed, KeepsForward)
    assert subclassed.weight is weight and subclassed.momentum == 0.2 and list(net.state_dict()) == keys
    assert type(net[2][0]) is GlobalBatchNorm2d
    x = torch.randn(4, 1, 6, 6)
    assert torch.allclose(net(x), copy.deepcopy(net)(x))  # one process: plain BatchNorm2d, and copies work (EMA)
    with pytest.raises(GanzooError, match=r"layer 1\.0 \(OwnForward\) overrides forward"):
        globalize_batch_norms(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(OwnForward(4))))
    with pytest.raises(GanzooError, match=r"layer 0 \(BatchNorm1d\) is not a BatchNorm2d"):
        globalize_batch_norms(nn.Sequential(nn.BatchNorm1d(4)))
