"""The ranker options as pydantic fields, for the adapters whose components are pydantic models
(LlamaIndex, LangChain; the Haystack component takes them as keywords). Generated from
:class:`~reasonrank_plugins.options.RankerOptions`, so they are declared once; ``PydanticAdapter``
adds what those two adapters share. Needs pydantic,
which both frameworks bring; nothing else imports this module."""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, create_model

from .adapters import (
    ENGINE_OPTIONS,
    api_key_from_env,
    build_for,
    check_ranker,
    invalid_arguments,
    make_ranker,
)
from .options import option_fields, option_help
from .ranker import ReasonRanker


class _EngineFieldsBase(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def build_ranker(self, ranker: ReasonRanker | None) -> ReasonRanker:
        """``ranker``, or a new one from the options this component was given explicitly."""
        return make_ranker(ranker, {k: getattr(self, k) for k in ENGINE_OPTIONS if k in self.model_fields_set})


def _field(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return Field(default_factory=f.default_factory, description=option_help(f))
    return Field(default=f.default, description=option_help(f))


EngineFields: type[_EngineFieldsBase] = create_model(  # type: ignore[call-overload]
    "EngineFields",
    __base__=_EngineFieldsBase,
    __doc__="``ReasonRanker``'s options with their defaults; only those set explicitly are passed on.",
    **{f.name: (hint, _field(f)) for f, hint in option_fields()},
)


def _env_key() -> SecretStr | None:
    key = api_key_from_env()
    return None if key is None else SecretStr(key)


class PydanticAdapter(EngineFields):  # type: ignore[misc,valid-type]
    """What the LlamaIndex and LangChain adapters share besides the engine fields: their own
    fields, building the engine once (or taking ``ranker=``), ``close`` and ``with``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    top_n: int | None = Field(default=5, description="Results to return; None keeps all.")
    score_threshold: float | None = Field(default=None, description="Drop results scoring below it.")
    title_key: str | None = Field(default="title", description="Metadata key of the title; None: no title.")
    keep_retrieval_score: bool = Field(
        default=False, description="Keep the first-stage score in metadata['retrieval_score']."
    )
    api_key: SecretStr | None = Field(
        default_factory=_env_key, exclude=True, description="Key for the openai backend; never dumped."
    )
    _ranker: ReasonRanker = PrivateAttr()
    _shared: bool = PrivateAttr(default=False)

    def __init__(self, *, ranker: ReasonRanker | None = None, **data: Any) -> None:
        check_ranker(ranker)
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise invalid_arguments(type(self).__name__, error.errors(), type(self).model_fields) from None
        self._ranker = build_for(self, ranker)
        self._shared = ranker is not None

    @property
    def ranker(self) -> ReasonRanker:
        return self._ranker

    def close(self) -> None:
        """Free the engine this component built; a shared ``ranker=`` stays open. Idempotent."""
        if not self._shared:
            self._ranker.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
