"""``RankerOptions`` is the one declaration of a ranker's options: the ranker, the adapters' fields
and every CLI command that builds a ranker are generated from it."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest
import typer.main

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.adapters import ENGINE_OPTIONS
from reasonrank_plugins.cli import app
from reasonrank_plugins.engine import EngineConfig
from reasonrank_plugins.options import DEFAULTS, OPTION_NAMES, RankerOptions

CLI_OPTIONS = [n for n in OPTION_NAMES if n != "backend_options"]


def test_the_engine_config_is_part_of_the_options():
    engine = [f.name for f in dataclasses.fields(EngineConfig)]
    assert list(OPTION_NAMES[: len(engine)]) == engine
    options = RankerOptions(window_size=6, step=3, strategy="tdpart", cutoff=2, timeout=4.0, model="org/name")
    assert options.engine_config() == EngineConfig(window_size=6, step=3, strategy="tdpart", cutoff=2)


def test_the_ranker_signature_is_generated_from_the_options():
    params = inspect.signature(ReasonRanker).parameters
    for name in CLI_OPTIONS:
        assert params[name].default == DEFAULTS[name], name
    assert list(params)[:2] == ["model", "backend"]
    assert params["backend_options"].kind is inspect.Parameter.VAR_KEYWORD


def test_the_adapter_fields_are_the_options():
    from reasonrank_plugins.adapter_fields import EngineFields

    assert tuple(EngineFields.model_fields) == OPTION_NAMES == ENGINE_OPTIONS
    for name, info in EngineFields.model_fields.items():
        assert info.get_default(call_default_factory=True) == DEFAULTS[name], name
        assert info.description, name


@pytest.mark.parametrize(("command", "excluded", "defaults"), [
    ("rerank", (), {}), ("eval", ("depth",), {}), ("batch", ("depth",), {}), ("mcp", (), {}),
    ("serve", (), {"cache_size": 1024}),  # a server caches by default
    ("demo", ("depth",), {"max_passage_tokens": 100}),  # DL19's web passages
])
def test_every_command_that_builds_a_ranker_takes_every_option(command, excluded, defaults):
    click_app = typer.main.get_command(app)
    params = {p.name: p for p in click_app.commands[command].params}
    for name in CLI_OPTIONS:
        if name in excluded:
            continue
        assert name in params, f"{command} lacks --{name}"
        assert params[name].default == defaults.get(name, DEFAULTS[name]), (command, name)
    assert {"base_url", "option", "latency", "max_batch"} <= set(params)


def test_keywords_that_are_not_options_go_to_the_backend():
    options = RankerOptions.from_kwargs(model="m", backend="openai", base_url="http://x/v1", window_size=4, step=2)
    assert options.backend_options == {"base_url": "http://x/v1"}
    assert options.changed() == {"model": "m", "backend": "openai", "window_size": 4, "step": 2,
                                 "backend_options": {"base_url": "http://x/v1"}}
    assert pickle.loads(pickle.dumps(options)) == options


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": -1}, "timeout"),
        ({"on_error": "ignore"}, "on_error"),
        ({"max_active_queries": 0}, "max_active_queries"),
        ({"reasoning_budget": 0}, "reasoning_budget"),
        ({"window_size": 4, "step": 4}, "step"),
        ({"backend_options": {"window_size": 3}}, "must not repeat"),
        ({"backend_options": ["x"]}, "mapping"),
    ],
)
def test_bad_options_are_refused_before_anything_loads(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RankerOptions(backend="scripted", **kwargs)


def test_a_ranker_from_options_and_from_keywords_are_the_same():
    options = RankerOptions(model="reverse", backend="scripted", window_size=5, step=1)
    with options.build() as a, ReasonRanker("reverse", "scripted", window_size=5, step=1) as b:
        assert a.options == b.options
        assert a.rerank("q", list("abcde")).order == b.rerank("q", list("abcde")).order == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="not both"):
        ReasonRanker("reverse", options=options)


def test_an_unknown_keyword_is_a_value_error_that_names_it():
    with pytest.raises(ValueError, match="windw_size"):
        ReasonRanker("overlap", "scripted", windw_size=3)


def test_the_reasoning_budget_defaults_to_the_embedded_models_own_on_llamacpp():
    """An embedded model on llama.cpp gets its measured budget; anything else, and any explicit
    budget, keeps what it was given or the reference's 3072."""
    from reasonrank_plugins.demo_model import DEFAULT_MODEL, MODELS
    from reasonrank_plugins.engine import REFERENCE_BUDGET, EngineConfig

    default = MODELS[DEFAULT_MODEL].reasoning_budget
    assert default < REFERENCE_BUDGET
    assert RankerOptions().reasoning_budget == default
    assert RankerOptions(model="demo", backend="llamacpp").reasoning_budget == default
    assert RankerOptions(model="demo-0.5b").reasoning_budget == MODELS["demo-0.5b"].reasoning_budget
    assert RankerOptions(backend="openai").reasoning_budget == REFERENCE_BUDGET  # a server's own model
    assert RankerOptions.from_kwargs(base_url="http://x/v1").reasoning_budget == REFERENCE_BUDGET  # auto: a server
    assert RankerOptions.from_kwargs(base_url="http://x/v1").changed() == {"backend_options": {"base_url": "http://x/v1"}}
    assert RankerOptions(model="org/name").reasoning_budget == REFERENCE_BUDGET
    assert RankerOptions(reasoning_budget=100).reasoning_budget == 100
    assert EngineConfig().reasoning_budget == REFERENCE_BUDGET
    with pytest.raises(ValueError, match="reasoning_budget must be a positive int"):
        RankerOptions(reasoning_budget=0)
