"""Exceptions that the command line turns into one clear line and exit status 2."""

from __future__ import annotations


class NanofindInputError(ValueError):
    """Bad user input: a recipe field, a file or a parameter that cannot be used.

    Parameters
    ----------
    message : str
        What is wrong, including the value received.
    field : str, optional
        Dotted name of the offending field (``"substrate.density_g_cm3"``) or the file path.
    """

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
