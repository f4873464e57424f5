"""The one error the data package raises for problems the user can fix (missing, corrupt or unusable data)."""


class DataError(ValueError):
    """A dataset cannot be found, downloaded, verified or used; the message says what to do about it."""
