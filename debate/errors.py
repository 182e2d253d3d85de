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
