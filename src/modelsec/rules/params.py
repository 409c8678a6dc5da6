"""Rule parameters as plain frozen dataclasses, validated by pydantic only at the boundary.

Importing pydantic costs more than the rest of a one-file scan (issue 14: start-up), and a
scan with a built-in group never validates anything: its parameters were validated when
the group's dump was generated (:func:`modelsec.policy.load_group` constructs them). So a
parameter model is a stdlib dataclass, and pydantic is imported the first time a user's
group, a SecurityGroup resource or ``modelsec rules`` needs a validator or a schema.

Pydantic reads a stdlib dataclass the way it reads its own: each field's ``alias`` and
``description`` come from ``dataclasses.field(metadata=...)`` (written with :func:`param`),
the configuration from ``__pydantic_config__``, a field's own check from an
``Annotated[..., Check(function)]`` marker, and checks across fields from
``__post_init__`` (a ``ValueError`` there is a validation error with the model's location).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from pydantic_core import CoreSchema, InitErrorDetails


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuleParams:
    """Base for rule parameters: camelCase keys as in the SecurityGroup resource, unknown
    keys rejected so that a typo is an error rather than a silently ignored setting."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "populate_by_name": True}

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """``raw`` validated (see :func:`validate`); ``pydantic.ValidationError`` if invalid."""
        return validate(cls, raw)


ParamsT = TypeVar("ParamsT", bound=RuleParams)


def param(
    *,
    alias: str | None = None,
    description: str,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | None = None,
    shown_default: Any = dataclasses.MISSING,
    **constraints: Any,
) -> Any:
    """A parameter field: its wire name (``alias``), the description ``modelsec rules``
    shows, and pydantic constraints (``min_length=1``). A mutable default needs a
    ``default_factory``; ``shown_default`` then puts its value in the schema."""
    metadata: dict[str, Any] = {"description": description, **constraints}
    if alias is not None:
        metadata["alias"] = alias
    if shown_default is not dataclasses.MISSING:
        metadata["json_schema_extra"] = {"default": shown_default}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Check:
    """``Annotated[str, Check(function)]``: pydantic runs ``function`` on the field's
    validated value and keeps what it returns; a ``ValueError`` is a validation error at
    the field. (What ``pydantic.AfterValidator`` does, without importing pydantic to
    define the model.)"""

    function: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], CoreSchema]) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.function, handler(source))


_ADAPTERS: dict[type[RuleParams], TypeAdapter[Any]] = {}


def adapter(model: type[ParamsT]) -> TypeAdapter[ParamsT]:
    """The validator of ``model``, built on first use."""
    built = _ADAPTERS.get(model)
    if built is None:
        from pydantic import TypeAdapter

        built = _ADAPTERS[model] = TypeAdapter(model)
    return built


def validate(model: type[ParamsT], raw: Mapping[str, Any]) -> ParamsT:
    """``raw`` (the ``params`` of a rule in a group) validated into ``model``; a
    ``pydantic.ValidationError`` listing every problem otherwise.

    An unknown key, here or in a nested parameter, is reported as a pydantic model reports
    it ("Extra inputs are not permitted", at the key) rather than as the dataclass'
    "Unexpected keyword argument": the messages users and the operator's conditions see
    stay what they were."""
    from pydantic import ValidationError

    try:
        return adapter(model).validate_python(dict(raw))
    except ValidationError as exc:
        if not any(e["type"] == "unexpected_keyword_argument" for e in exc.errors()):
            raise
        errors: list[InitErrorDetails] = []
        for error in exc.errors():
            extra = error["type"] == "unexpected_keyword_argument"
            detail: InitErrorDetails = {
                "type": "extra_forbidden" if extra else error["type"],
                "loc": error["loc"],
                "input": error["input"],
            }
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            errors.append(detail)
        raise ValidationError.from_exception_data(exc.title, errors) from None


def construct(model: type[ParamsT], validated: Mapping[str, Any]) -> ParamsT:
    """``model`` from parameters validated before (a built-in group's, checked when its
    dump was generated), without building a validator: keys by alias or name, values as
    validation left them. A field whose default is a frozenset takes the JSON list a dump
    holds as one. Nested parameter models (objects in the dump) are left to pydantic."""
    if any(
        isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v))
        for v in validated.values()
    ):
        return validate(model, validated)
    by_key: dict[str, dataclasses.Field[Any]] = {}
    for field in dataclasses.fields(model):
        by_key[field.name] = field
        if "alias" in field.metadata:
            by_key[field.metadata["alias"]] = field
    values: dict[str, Any] = {}
    for key, value in validated.items():
        known = by_key.get(key)
        if known is None:  # only if the dump is stale: validation rejected unknown keys
            raise ValueError(f"{model.__name__}: unknown parameter {key!r}")
        values[known.name] = frozenset(value) if isinstance(known.default, frozenset) else value
    return model(**values)


def schema(model: type[RuleParams]) -> dict[str, Any]:
    """The JSON schema of ``model`` with wire names (``modelsec rules``)."""
    return adapter(model).json_schema(by_alias=True)


def dump(params: RuleParams) -> dict[str, Any]:
    """``params`` as JSON values under their wire names (``modelsec groups show``)."""
    dumped: dict[str, Any] = adapter(type(params)).dump_python(params, mode="json", by_alias=True)
    return dumped
