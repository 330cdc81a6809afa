"""Exceptions that the CLI turns into one clear line (exit code 2)."""


class GanzooError(Exception):
    """A problem the user can fix: bad input, unknown name, missing file."""


class CheckpointError(GanzooError):
    """A checkpoint directory is missing, incomplete, or does not match its config."""


class DataError(GanzooError):
    """No usable images, or a dataset option that does not fit the data."""


class TrainingDiverged(GanzooError):
    """A loss or weight became NaN/Inf; the last good checkpoint is kept."""


class TrainingInterrupted(GanzooError):
    """SIGINT/SIGTERM: a checkpoint was saved; the exit code is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code
