import json

import pytest
import torch

import ganzoo
from ganzoo.checkpoint import load_gan
from ganzoo.trainer import Trainer
from tiny import tiny_config


def tiny(tmp_path, **kwargs):
    return tiny_config(tmp_path / "run", **{"images": 32, **kwargs})


def test_few_steps_change_weights_and_keep_losses_finite(tmp_path):
    trainer = Trainer(tiny(tmp_path))
    before = {k: v.clone() for k, v in trainer.gan.state_dict().items()}
    checkpoint = trainer.fit()
    after = trainer.gan.state_dict()
    changed = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) == len([k for k in before if k.endswith("weight")])
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"]])).all() for r in records)
    assert (tmp_path / "run" / "samples" / "step-00000002.png").exists()
    assert checkpoint.name == "step-00000002" and (tmp_path / "run" / "last").resolve() == checkpoint.resolve()


def test_wgan_gp_epoch_is_one_critic_pass(tmp_path):
    trainer = Trainer(tiny(tmp_path, arch="wgan-gp", images=80, steps=None, epochs=1))
    # 80 images / batch 8 = 10 critic batches per epoch; n_critic 5 -> 2 generator steps.
    assert trainer.batches_per_epoch == 10 and trainer.steps_per_epoch == 2 and trainer.total_steps == 2
    trainer.fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"gp", "wasserstein"} <= set(log[-1])


def test_checkpoint_round_trip_gives_identical_samples(tmp_path):
    for arch in ("dcgan", "wgan-gp"):
        trainer = Trainer(tiny(tmp_path / arch, arch=arch, steps=1, n_critic=1))
        checkpoint = trainer.fit()
        loaded = ganzoo.load(str(checkpoint))
        trained = trainer.gan.to(memory_format=torch.contiguous_format)  # trained channels_last, loaded as saved
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
        assert torch.equal(trained.sample(6, seed=3), loaded.sample(6, seed=3))
        config = json.loads((checkpoint / "config.json").read_text())
        assert config["architecture"] == arch and config["model_args"]["resolution"] == 64
        assert config["dataset"]["name"] == "synthetic-cxr" and len(config["dataset"]["fingerprint"]) == 16
        assert {"dcgan", "wgan-gp", "datasets"} <= set(config["plugins"])
        assert "torch" in config["versions"] and config["training"]["seed"] == 0
        card = (checkpoint / "README.md").read_text()
        assert card.startswith("---\n") and "not for diagnosis" in card.lower()


@pytest.mark.parametrize("arch", ["dcgan", "wgan-gp"])
def test_resume_is_exact(tmp_path, arch):
    extra = {"n_critic": 2} if arch == "wgan-gp" else {}
    straight = Trainer(tiny(tmp_path / "a", arch=arch, steps=4, images=48, **extra))
    straight.fit()
    first = Trainer(tiny(tmp_path / "b", arch=arch, steps=2, images=48, **extra))
    first.fit()
    resumed_path = ganzoo.train(tiny(tmp_path / "b", arch=arch, steps=4, images=48, resume=str(tmp_path / "b" / "run"), out=None, **extra))
    resumed = load_gan(resumed_path)
    reference = straight.gan.state_dict()
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, reference[key]), key
    # Optimizer state too: compare the saved trainer states of the two final checkpoints.
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "run" / "last" / "trainer_state.safetensors"))
    b = load_file(str(resumed_path / "trainer_state.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_changing_the_model(tmp_path):
    Trainer(tiny(tmp_path)).fit()
    with pytest.raises(ganzoo.errors.GanzooError, match="--arch cannot change on --resume"):
        ganzoo.train(tiny(tmp_path, arch="wgan-gp", resume=str(tmp_path / "run"), out=None))


def test_noise_factor_and_ema(tmp_path):
    trainer = Trainer(tiny(tmp_path, noise_factor=0.5, ema=0.9))
    checkpoint = trainer.fit()
    loaded = load_gan(checkpoint)
    assert loaded.generator_ema is not None
    assert torch.equal(loaded.sample(2, seed=1), trainer.gan.to(memory_format=torch.contiguous_format).sample(2, seed=1))


def test_keep_checkpoints_prunes_old_ones(tmp_path):
    Trainer(tiny(tmp_path, images=16, steps=None, epochs=4, checkpoint_every=1, keep_checkpoints=2)).fit()
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-00000006", "step-00000008"]


def test_nan_loss_stops_with_a_clear_message(tmp_path, monkeypatch):
    from ganzoo.errors import TrainingDiverged
    from ganzoo_dcgan.model import BCELoss

    original = BCELoss.generator_loss
    monkeypatch.setattr(BCELoss, "generator_loss", lambda self, d, fake: original(self, d, fake) * float("nan"))
    with pytest.raises(TrainingDiverged, match="g_loss became nan at step 1"):
        Trainer(tiny(tmp_path)).fit()


def test_batch_larger_than_dataset_is_reduced(tmp_path):
    trainer = Trainer(tiny(tmp_path, images=6, batch_size=128))
    assert trainer.batch_size == 6


def test_torch_normalize_and_three_channels(tmp_path):
    trainer = Trainer(tiny(tmp_path, normalize="torch", channels=3))
    assert trainer.real_batch(0).shape == (8, 3, 64, 64)
    trainer.fit()
