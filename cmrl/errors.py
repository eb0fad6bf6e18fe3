"""The one error hierarchy of cmrl: every error that a user's input can cause.

Entry points (scripts/*.py) catch `UserError` and print its message as one or two lines, without a
traceback (set CMRL_TRACEBACK=1 to see it). Each message names what was wrong and what to do.

    UserError
    ├── ConfigError      a configuration value is missing, of the wrong type, out of range or
    │                    inconsistent with the data, the environment or a run being resumed
    ├── DatasetError     a dataset is missing, malformed or holds values cmrl cannot train on
    └── CheckpointError  a checkpoint cannot be written or read

`ConfigError` and `DatasetError` are also `ValueError`s, so code that validates values can be used
where a ValueError is expected.
"""


class UserError(Exception):
    """Something the user supplied is wrong; the message says what and what to do."""


class ConfigError(UserError, ValueError):
    """A configuration value is missing, of the wrong type, out of range, or inconsistent with the data."""


class DatasetError(UserError, ValueError):
    """A dataset is missing, malformed or holds values cmrl cannot train on.

    The message always says which dataset, file, key or field was at fault and what to do about it.
    """


class CheckpointError(UserError):
    """A checkpoint cannot be written or read; the message says which file and what to do."""
