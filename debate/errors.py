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


class DatabaseError(Exception):
    """The database failed under a command (not the user's input): printed as one line
    naming the database and the cause, exit code `exit_code`."""

    exit_code = 3


class DatabaseFault(DatabaseError):
    """The database refused the work: disk full, read-only, locked, ... (exit 3)."""

    exit_code = 3


class DatabaseUnavailable(DatabaseError):
    """The database stayed unreachable for the whole reconnect window (exit 2)."""

    exit_code = 2
class ModelFailure(UserError):
    """A model or its server failed (server down after retries, a refused request, no
    logprobs, a chat template that refuses the prompt): one line and exit 2 from the CLI.
    `retryable`: whether running the command again may succeed."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable
