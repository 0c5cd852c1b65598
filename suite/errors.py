"""One error type for bad user input across the suite: printed as one line, exit code 2."""
from baselines import ModelConfigError
from tasks import TaskConfigError


class ConfigError(ValueError):
    """A suite parameter is unknown or impossible; the message is one line naming it."""


#: every error that means "the input is wrong", wherever it was raised
INPUT_ERRORS = (ConfigError, TaskConfigError, ModelConfigError)
