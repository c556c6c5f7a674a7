"""The one exception type of the dataset layer."""

from __future__ import annotations

from rlkit.errors import UserError


class DatasetError(UserError):
    """Anything wrong with an offline dataset: missing, incomplete, corrupted or mismatched.

    Messages are one line and say what to do (which command regenerates the
    data, which file to delete, which option to change).
    """
