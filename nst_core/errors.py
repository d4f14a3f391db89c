"""Error types the engine raises; callers (CLI, pipeline) map them to exit codes and dead letters."""


class NSTError(Exception):
    """Base class for every error the project raises on purpose."""


class InputError(NSTError, ValueError):
    """A user-supplied input (image, option, manifest row) is unusable; the message says why."""


class WeightsError(NSTError):
    """VGG19 weights are missing, corrupt or untrusted."""


class NumericalError(NSTError):
    """The optimisation produced NaN or Inf."""
