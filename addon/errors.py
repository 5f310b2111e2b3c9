"""The one error a user sees for bad input."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names what is wrong; nothing was changed."""
