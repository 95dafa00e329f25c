"""The one error the data path raises: its message says, in plain words, what to change."""


class DataError(ValueError):
    """The data cannot train this task; the message says what to fix."""
