"""One wording for validation problems: ``dotted.key: message``, pydantic's message as it is.

Every place that turns a :class:`pydantic.ValidationError` into words for a person (a
configuration file, a device's desired config, a payload, a rules file, a command line)
uses :func:`problems`, so a user sees the same shape of message everywhere.

>>> from pydantic import BaseModel, Field, ValidationError
>>> class Desired(BaseModel):
...     batch_max_samples: int = Field(ge=1)
>>> try:
...     Desired.model_validate({"batch_max_samples": 0})
... except ValidationError as exc:
...     problems(exc)
['batch_max_samples: Input should be greater than or equal to 1']
>>> try:
...     Desired.model_validate([])
... except ValidationError as exc:
...     problems(exc, root="config")
['config: Input should be a valid dictionary or instance of Desired']
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

__all__ = ["place", "problems"]


def place(loc: Sequence[int | str], root: str = "") -> str:
    """The dotted key a problem is at; ``root`` when it is the whole input."""
    return ".".join(str(part) for part in loc) or root


def problems(exc: ValidationError, root: str = "") -> list[str]:
    """``place: message`` for each problem, in pydantic's order."""
    return [f"{place(err['loc'], root)}: {err['msg']}" for err in exc.errors()]
