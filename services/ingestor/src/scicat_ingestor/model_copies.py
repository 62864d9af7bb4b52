"""`copied`: `BaseModel.model_copy(update=...)` at a third less cost, for the per-event path;
`update_in_place` for a model nothing else holds.

Every file event copies its dataset (~50 fields) and its datablock. pydantic's `model_copy` goes
through `__copy__`, which copies the extra fields and the set of set fields with the generic
`copy.copy`, and, for a model that allows extra fields (every SciCat document does), sorts the
update into fields and extras key by key; that was ~7 µs of a file event's ~40. This builds the
same instance directly from the attributes pydantic documents for every model
(`__pydantic_extra__`, `__pydantic_fields_set__`, `__pydantic_private__`), as `model_construct`
does. Like `model_copy`, it is shallow and does not validate: callers update with values of
the fields' types. `test_ingestor_model_copies.py` holds it to `model_copy`'s result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)

_set = object.__setattr__


def copied(model: Model, update: Mapping[str, Any]) -> Model:
    """A shallow copy of `model` with `update` applied, as `model.model_copy(update=update)`."""
    cls = type(model)
    values = model.__dict__.copy()
    extra = model.__pydantic_extra__
    if extra is None:
        values.update(update)
    else:
        extra = dict(extra)
        fields = cls.__pydantic_fields__
        for key, value in update.items():
            if key in fields:
                values[key] = value
            else:
                extra[key] = value
    private = model.__pydantic_private__
    copy = cls.__new__(cls)
    _set(copy, "__dict__", values)
    _set(copy, "__pydantic_extra__", extra)
    _set(copy, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set(copy, "__pydantic_private__", None if private is None else dict(private))
    return copy


def update_in_place(model: BaseModel, update: Mapping[str, Any]) -> None:
    """`update` set on `model` itself, as `copied` sets it on a copy: for a model its caller made
    and nothing else holds yet (a dataset this event copied, a datablock the batch owns), where a
    copy would only be thrown away. Fields only (as every caller updates)."""
    model.__dict__.update(update)
    model.__pydantic_fields_set__.update(update)
