"""The base of every error that a user's input can cause (bad config value, missing or malformed
dataset, unreadable checkpoint). Entry points print these as one clear message, not a traceback."""


class UserError(Exception):
    """Something the user supplied is wrong; the message says what and what to do."""


class ConfigError(UserError, ValueError):
    """A configuration value is missing, of the wrong type, out of range, or inconsistent with the data."""
