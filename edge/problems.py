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

Given the model, a misspelt key (an ``extra="forbid"`` model's) names the key it is closest to:

>>> class Batching(BaseModel, extra="forbid"):
...     max_samples: int = 60
>>> class Agent(BaseModel, extra="forbid"):
...     batching: Batching | None = None
>>> try:
...     Agent.model_validate({"batching": {"max_sample": 9}})
... except ValidationError as exc:
...     problems(exc, model=Agent)
['batching.max_sample: Extra inputs are not permitted (did you mean max_samples?)']
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

__all__ = ["place", "problems"]


def place(loc: Sequence[int | str], root: str = "") -> str:
    """The dotted key a problem is at; ``root`` when it is the whole input."""
    return ".".join(str(part) for part in loc) or root


def problems(exc: ValidationError, root: str = "",
             model: type[BaseModel] | None = None) -> list[str]:
    """``place: message`` for each problem, in pydantic's order; with the ``model`` that was
    validated, an unknown key also names the known key closest to it."""
    said = []
    for err in exc.errors():
        line = f"{place(err['loc'], root)}: {err['msg']}"
        if err["type"] == "extra_forbidden" and model is not None and err["loc"]:
            close = difflib.get_close_matches(str(err["loc"][-1]),
                                              _keys_at(model, err["loc"][:-1]), n=1, cutoff=0.7)
            line += f" (did you mean {close[0]}?)" if close else ""
        said.append(line)
    return said


def _keys_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the model takes at ``loc`` (through nested models, lists and optionals)."""
    here: object = model
    for part in loc:
        here = _model_in(here)
        if isinstance(part, int) or here is None:
            continue  # a list's item: the same model
        assert isinstance(here, type)
        field = here.model_fields.get(part)
        if field is None:
            return []
        here = field.annotation
    found = _model_in(here)
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or inside ``X | None``, ``list[X]``…"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
