import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ganzoo.cli import build_app

runner = CliRunner()
TINY = ["--images", "16", "--batch-size", "8", "--steps", "1", "--device", "cpu"]


def invoke(*args, **env):
    return runner.invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "200", **env})


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == "ganzoo 0.1.0"
    assert "train" in invoke("--help").output


def test_list_prints_descriptions_literally_not_as_markup():
    result = CliRunner().invoke(build_app(), ["list", "executors"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "pip install 'ganzoo[ray]'" in result.output and "'ganzoo[slurm]'" in result.output


def test_list_and_plugins():
    result = invoke("list", "archs")
    assert result.exit_code == 0 and "dcgan" in result.output and "wgan-gp" in result.output
    assert "bce" in invoke("list", "losses").output
    assert "synthetic-cxr" in invoke("list", "datasets").output
    assert "wgan-gp" in invoke("list", "archs", "--filter", "wgan*").output
    assert "dcgan" not in invoke("list", "archs", "--filter", "wgan*").output
    result = invoke("plugins")
    assert result.exit_code == 0 and "built-in" in result.output and "architectures: dcgan" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--arch", "nope"], "unknown architecture 'nope'; known: dcgan, wgan-gp"),
        (["train", "--res", "96"], "does not support resolution 96; supported: 64, 128"),
        (["train", "--channels", "2"], "channels must be 1 or 3"),
        (["train", "--epochs", "-1"], "epochs must be >= 1"),
        (["train", "--batch-size", "0"], "batch_size must be >= 1"),
        (["train", "--normalize", "zscore"], "normalize must be one of none, torch"),
        (["train", "--data", "/no/such/dir"], "data directory not found: /no/such/dir"),
        (["generate", "/no/such/ckpt"], "checkpoint not found"),
        (["list", "gans"], "unknown kind 'gans'"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = invoke(*args, "--out", tmp_path) if args[0] == "train" else invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_debug_env_shows_the_exception():
    result = invoke("train", "--arch", "nope", GANZOO_DEBUG="1")
    assert result.exit_code != 0 and result.exception is not None


def test_train_then_generate(tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "--arch", "wgan-gp", "--res", "128", "--out", run, *TINY)
    assert result.exit_code == 0, result.output
    result = invoke("generate", run, "-n", "5", "--out", tmp_path / "imgs", "--grid", tmp_path / "grid.png", "--seed", "3")
    assert result.exit_code == 0, result.output
    import cv2

    files = sorted((tmp_path / "imgs").glob("*.png"))
    assert len(files) == 5 and (tmp_path / "grid.png").exists()
    assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape == (128, 128)

    # A second run into the same folder silently replaced (and mixed with) the first run's files.
    before = {f.name: f.read_bytes() for f in files}
    result = invoke("generate", run, "-n", "2", "--out", tmp_path / "imgs", "--seed", "4")
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path / 'imgs'} already holds 5 sample-*.png file(s) from an earlier run; choose another --out or pass --overwrite\n"
    assert {f.name: f.read_bytes() for f in sorted((tmp_path / "imgs").glob("*.png"))} == before
    result = invoke("generate", run, "-n", "2", "--out", tmp_path / "imgs", "--seed", "4", "--overwrite")
    assert result.exit_code == 0, result.output
    assert [f.name for f in sorted((tmp_path / "imgs").glob("*.png"))] == ["sample-00000.png", "sample-00001.png"]


def test_config_file_with_cli_override(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('arch = "wgan-gp"\nimages = 16\nbatch_size = 8\nsteps = 1\ndevice = "cpu"\nn_critic = 2\nseed = 5\n')
    result = invoke("train", "--config", toml, "--seed", "7", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert config["architecture"] == "wgan-gp" and config["loss_args"]["n_critic"] == 2
    assert config["training"]["seed"] == 7  # the flag wins over the file

    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("arch: dcgan\nepoch: 3\n")
    result = invoke("train", "--config", yaml_file)
    assert result.exit_code == 2 and "unknown key 'epoch'" in result.output
    yaml_file.write_text("arch: dcgan\nepochs: three\n")
    result = invoke("train", "--config", yaml_file)
    assert result.exit_code == 2 and "epochs must be int, got str 'three'" in result.output


def test_resume_continues_a_run(tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--out", run, *TINY).exit_code == 0
    result = invoke("train", "--resume", run, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "step-00000002" / "config.json").exists()


def test_subprocess_console_script_and_module(tmp_path):
    env = {**os.environ, "GANZOO_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "ganzoo", "--version"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ganzoo 0.1.0"
    out = subprocess.run(["ganzoo", "train", "--out", str(tmp_path / "run"), *TINY], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "last" / "model.safetensors").exists()
    out = subprocess.run(["ganzoo", "train", "--arch", "nope"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.strip() == "error: unknown architecture 'nope'; known: dcgan, wgan-gp"


def test_messages_print_square_brackets_literally(tmp_path):
    """Rich would read `[fid]` as markup and drop it: install hints lost their extras."""
    missing = tmp_path / "ganzoo[fid].toml"
    result = CliRunner().invoke(build_app(), ["train", "--config", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: config file not found: {missing}"


# A fresh interpreter running the console script's main() with the given arguments.
STARTUP_PROBE = """
import sys
import ganzoo.cli
sys.argv = ["ganzoo", *sys.argv[1:]]
try:
    ganzoo.cli.main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["train", "--help"], ["hub", "--help"]])
def test_version_and_help_import_no_torch(args):
    """Every command used to import torch (2-6 s) before reading its arguments; --version and
    --help need the plugins' command names, not torch."""
    out = subprocess.run([sys.executable, "-c", STARTUP_PROBE, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("torch imported: False"), out.stdout
    if args == ["--help"]:
        assert all(f"  {name} " in out.stdout for name in ("train", "evaluate", "sweep", "augment", "hub"))


def test_train_help_is_readable_at_80_columns():
    """Descriptions used to wrap at ~20 characters beside the long --x/--no-x flags."""
    out = invoke("train", "--help", COLUMNS="80").output
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "--data-seed <int>               Seed of the subset and of synthetic data." in out
