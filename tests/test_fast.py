"""The speed switches: their defaults per device, exact where they claim to be."""

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo.config import TrainConfig
from ganzoo.errors import GanzooError
from ganzoo.fast import FastOptions, InstanceNorm2dFP32, swap_instance_norms
from ganzoo.models import create_gan
from ganzoo.trainer import Trainer
from ganzoo_wgan_gp import WGANGPLoss


def tiny(tmp_path, **kwargs):
    values = {"arch": "wgan-gp", "images": 16, "batch_size": 8, "steps": 1, "n_critic": 1, "device": "cpu", "out": str(tmp_path / "run")}
    return TrainConfig.from_dict({**values, **kwargs})


def test_defaults_per_device():
    cpu = FastOptions.resolve(torch.device("cpu"))
    assert cpu == FastOptions(precision="fp32", channels_last=True, fused=True, cuda_graphs=False)
    assert FastOptions.resolve(torch.device("cpu"), cuda_graphs=True).cuda_graphs is False
    assert FastOptions.resolve(torch.device("cuda")).cuda_graphs
    gpu = FastOptions.resolve(torch.device("cuda"), cuda_graphs=False)
    assert gpu.channels_last and gpu.fused and not gpu.cuda_graphs and gpu.precision == "fp32"
    plain = FastOptions.resolve(torch.device("cpu"), channels_last=False, fused=False)
    assert plain == FastOptions()


def test_instance_norm_matches_torch_and_keeps_layout():
    x = torch.randn(4, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    ours = InstanceNorm2dFP32()(x)
    assert torch.allclose(ours, nn.InstanceNorm2d(8)(x), atol=1e-5)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    critic = create_gan("wgan-gp").discriminator
    keys = list(critic.state_dict())
    assert swap_instance_norms(critic) == 4 and list(critic.state_dict()) == keys


def test_joint_critic_pass_is_exact():
    torch.manual_seed(0)
    critic = create_gan("wgan-gp").discriminator.double()  # float64: only the maths is compared
    real, fake = torch.randn(6, 1, 64, 64, dtype=torch.float64), torch.randn(6, 1, 64, 64, dtype=torch.float64)
    results = []
    for joint in (False, True):
        loss = WGANGPLoss()
        loss.joint_pass = joint
        critic.zero_grad()
        value, _ = loss.discriminator_loss(critic, real, fake, torch.Generator().manual_seed(1))
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in critic.parameters()]))
    (a, grads_a), (b, grads_b) = results
    assert torch.allclose(a, b, rtol=1e-12)
    assert all(torch.allclose(x, y, atol=1e-12, rtol=1e-9) for x, y in zip(grads_a, grads_b))


def test_switches_on_cpu_train_save_and_resume(tmp_path):
    fast = {"fused": True, "channels_last": True, "precision": "bf16"}
    trainer = Trainer(tiny(tmp_path, **fast))
    assert trainer.loss.joint_pass
    checkpoint = trainer.fit()
    resumed = ganzoo.train(tiny(tmp_path, steps=2, resume=str(tmp_path / "run"), out=None, **fast))
    assert resumed.name == "step-00000002" and checkpoint.name == "step-00000001"


def test_bad_precision_is_refused(tmp_path):
    with pytest.raises(GanzooError, match="precision must be one of fp32, bf16"):
        Trainer(tiny(tmp_path, precision="fp16"))
