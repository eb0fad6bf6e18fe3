"""The one exception the data package raises for unusable datasets."""
from cmrl.errors import UserError


class DatasetError(UserError, ValueError):
    """A dataset is missing, malformed or holds values cmrl cannot train on.

    The message always says which dataset, file, key or field was at fault and what to do about it.
    Entry points catch it as a UserError and print the message alone.
    """
