"""Errors a user can cause. The CLI prints them as one line, never a traceback."""


class UserError(Exception):
    """A problem with the user's input (config, dataset file, database URL...).

    The message must name the file, line or field at fault.
    """


class ConfigError(UserError):
    pass


class DatasetError(UserError):
    pass


class SchemaError(UserError):
    """The database is at a revision this code does not know."""


class ModelFailure(UserError):
    """A model or its server failed (server down after retries, a refused request, no
    logprobs, a chat template that refuses the prompt): one line and exit 2 from the CLI.
    `retryable`: whether running the command again may succeed."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable
