"""The speed switches: their defaults per device, exact where they claim to be."""

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo.errors import GanzooError
from ganzoo.fast import FastOptions, InstanceNorm2dFP32, UnfoldConv2d, swap_instance_norms, swap_thin_convs
from ganzoo.models import create_gan
from ganzoo.trainer import Trainer
from ganzoo_wgan_gp.model import WGANGPLoss
from tiny import tiny_config


def tiny(tmp_path, **kwargs):
    return tiny_config(tmp_path / "run", **{"arch": "wgan-gp", "steps": 1, "n_critic": 1, "log_every": 10, **kwargs})


def test_defaults_per_device():
    cpu = FastOptions.resolve(torch.device("cpu"))
    assert cpu == FastOptions(precision="fp32", channels_last=True, fused=True, cuda_graphs=False, micro_batch=32)
    assert FastOptions.resolve(torch.device("cpu"), cuda_graphs=True).cuda_graphs is False
    assert FastOptions.resolve(torch.device("cuda")).cuda_graphs
    gpu = FastOptions.resolve(torch.device("cuda"), cuda_graphs=False)
    assert gpu.channels_last and gpu.fused and not gpu.cuda_graphs and gpu.precision == "fp32" and gpu.micro_batch == 0
    plain = FastOptions.resolve(torch.device("cpu"), channels_last=False, fused=False, micro_batch=0)
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


def test_wgan_gp_terms_backwarded_one_at_a_time_give_the_whole_loss_gradient():
    torch.manual_seed(0)
    critic = create_gan("wgan-gp").discriminator.double()
    real, fake = torch.randn(4, 1, 64, 64, dtype=torch.float64), torch.randn(4, 1, 64, 64, dtype=torch.float64)
    loss = WGANGPLoss()
    critic.zero_grad()
    whole, parts = loss.discriminator_loss(critic, real, fake, torch.Generator().manual_seed(1))
    whole.backward()
    expected = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    terms = []
    for term, _ in loss.discriminator_terms(critic, real, fake, torch.Generator().manual_seed(1)):
        term.backward()
        terms.append(term.detach())
    assert len(terms) == 2 and set(parts) == {"wasserstein", "gp"}
    assert torch.allclose(sum(terms), whole.detach(), rtol=1e-12)
    assert torch.allclose(terms[1], loss.gp_lambda * parts["gp"], rtol=1e-12)
    assert all(torch.allclose(p.grad, g, atol=1e-12, rtol=1e-9) for p, g in zip(critic.parameters(), expected))


@pytest.mark.parametrize("res", [64, 128])
def test_unfold_first_conv_is_exact_through_the_gradient_penalty(res):
    torch.manual_seed(0)
    critic = create_gan("wgan-gp", res=res).discriminator.double()
    keys = list(critic.state_dict())
    real, fake = torch.randn(3, 1, res, res, dtype=torch.float64), torch.randn(3, 1, res, res, dtype=torch.float64)
    results = []
    for swap in (False, True):
        if swap:
            assert swap_thin_convs(critic) == 1 and isinstance(critic[0], UnfoldConv2d)
        critic.zero_grad()
        value, _ = WGANGPLoss().discriminator_loss(critic, real, fake, torch.Generator().manual_seed(1))
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in critic.parameters()]))
    (a, grads_a), (b, grads_b) = results
    assert list(critic.state_dict()) == keys
    assert torch.allclose(a, b, rtol=1e-12)
    assert all(torch.allclose(x, y, atol=1e-12, rtol=1e-9) for x, y in zip(grads_a, grads_b))
    assert critic[0](real).is_contiguous(memory_format=torch.channels_last)


def test_critic_micro_batches_add_up_to_the_whole_batch(tmp_path):
    whole = Trainer(tiny(tmp_path, micro_batch=0, gp_lambda=0.0))
    chunked = Trainer(tiny(tmp_path, micro_batch=2, gp_lambda=0.0))
    real = whole.real_batch(0)
    fake = torch.randn_like(real)
    results = []
    for trainer in (whole, chunked):
        trainer.discriminator.zero_grad()
        terms = list(trainer._discriminator_terms(trainer.discriminator, real, fake))
        sum(term for term, _ in terms).backward()
        wasserstein = sum(parts["wasserstein"] for _, parts in terms if "wasserstein" in parts)
        results.append((len(terms), wasserstein, [p.grad.clone() for p in trainer.discriminator.parameters()]))
    (n_whole, w_whole, g_whole), (n_chunked, w_chunked, g_chunked) = results
    assert (n_whole, n_chunked) == (2, 8)  # (wasserstein, penalty) once, or per chunk of 2 of the 8 images
    assert torch.allclose(w_whole, w_chunked, atol=1e-6)
    assert all((a - b).norm() <= 1e-5 * a.norm() for a, b in zip(g_whole, g_chunked))  # float32 sums in another order


def test_batch_norm_discriminators_are_never_split(tmp_path):
    trainer = Trainer(tiny(tmp_path, arch="dcgan", micro_batch=2))
    real = trainer.real_batch(0)
    assert len(list(trainer._discriminator_terms(trainer.discriminator, real, torch.randn_like(real)))) == 1
