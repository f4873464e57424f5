"""The one error the data package raises for problems the user can fix (missing, corrupt or unusable data)."""

from autoencoders.errors import InputError


class DataError(InputError):
    """A dataset cannot be found, downloaded, verified or used; the message says what to do about it."""
