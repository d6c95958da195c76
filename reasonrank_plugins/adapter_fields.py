"""The ranker options as pydantic fields, for the adapters whose components are pydantic models
(LlamaIndex, LangChain; the Haystack component takes them as init parameters). Generated from
:class:`~reasonrank_plugins.options.RankerOptions`, so they are declared once. Needs pydantic,
which both frameworks bring; nothing else imports this module."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from .adapters import ENGINE_OPTIONS, make_ranker
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
