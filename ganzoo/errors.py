"""Exceptions that the CLI turns into one clear line (exit code 2)."""


class GanzooError(Exception):
    """A problem the user can fix: bad input, unknown name, missing file."""


class CheckpointError(GanzooError):
    """A checkpoint directory is missing, incomplete, or does not match its config."""


class DataError(GanzooError):
    """No usable images, or a dataset option that does not fit the data."""


class TrainingDiverged(GanzooError):
    """A loss or weight became NaN/Inf; the last good checkpoint is kept."""
