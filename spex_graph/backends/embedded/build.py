"""Build llama.cpp's ``llama-server`` once into the cache directory.

The source is the llama.cpp tree vendored in the llama-cpp-python sdist (a
PyPI package, so no other host is needed). Only the ``llama-server`` target is
built, statically, with ``GGML_NATIVE=OFF`` (AVX2/FMA/F16C baseline, portable
across x86-64 machines of this kind) and without curl, OpenSSL or the web UI.
The binary lands in ``<cache>/bin/llama-server-<version>``; later calls return
it at once. ``$SPEX_LLAMA_SERVER`` points at an existing binary instead.
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spex_graph.backends.embedded.models import cache_dir
from spex_graph.errors import BackendUnavailableError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The llama-cpp-python sdist whose vendored llama.cpp is built."""

CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
)
"""CMake options of the build (portable, no network features)."""

FIX = "python -c 'import spex_graph.backends.embedded as e; e.setup()'"


def server_binary(directory: Path | None = None) -> Path:
    """Where the built ``llama-server`` binary lives (whether or not it is built yet)."""
    return (directory or cache_dir()) / "bin" / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}"


def ensure_llama_server(
    directory: Path | None = None, *, progress: Callable[[str], None] | None = print
) -> Path:
    """Return the path of a runnable ``llama-server``, building it on first use (~10 min).

    Raises:
        BackendUnavailableError: the sdist cannot be fetched or the build fails (one line).
    """
    override = os.environ.get("SPEX_LLAMA_SERVER")
    if override:
        path = Path(override).expanduser()
        if not os.access(path, os.X_OK):
            raise BackendUnavailableError(
                f"$SPEX_LLAMA_SERVER={override} is not an executable; unset it or fix the path"
            )
        return path
    root = directory or cache_dir()
    binary = server_binary(root)
    if os.access(binary, os.X_OK):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".build.lock"):
        if os.access(binary, os.X_OK):  # built by another process meanwhile
            return binary
        _build(root, binary, progress or (lambda _msg: None))
    return binary


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(root: Path, binary: Path, progress: Callable[[str], None]) -> None:
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise BackendUnavailableError(
                f"building llama-server needs {tool}; fix: apt-get install -y cmake g++"
            )
    start = time.monotonic()
    source = _source_tree(root, progress)
    build_dir = root / "build" / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    progress(f"configuring llama-server in {build_dir} ...")
    _run(["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_FLAGS], progress, quiet=True)
    jobs = str(os.cpu_count() or 2)
    progress(f"building llama-server with {jobs} jobs (about 10 minutes on 2 cores) ...")
    _run(
        ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs],
        progress,
        quiet=False,
    )
    built = build_dir / "bin" / "llama-server"
    if not built.is_file():
        raise BackendUnavailableError(f"llama-server build produced no {built}; fix: {FIX}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(binary.name + ".tmp")
    shutil.copy2(built, tmp)
    tmp.replace(binary)
    progress(f"llama-server built in {time.monotonic() - start:.0f}s: {binary}")


def _source_tree(root: Path, progress: Callable[[str], None]) -> Path:
    src_root = root / "src"
    tree = src_root / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    if (tree / "CMakeLists.txt").is_file() and (tree / ".complete").is_file():
        return tree
    src_root.mkdir(parents=True, exist_ok=True)
    sdist = src_root / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not sdist.is_file():
        progress(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist ...")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-d",
            str(src_root),
        ]
        _run(cmd, progress, quiet=True)
        if not sdist.is_file():
            raise BackendUnavailableError(
                f"pip download left no {sdist.name}; fix: pip download "
                f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} --no-binary :all: --no-deps "
                f"-d {src_root}"
            )
    progress(f"extracting llama.cpp from {sdist.name} ...")
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            if member.name.startswith(prefix):
                member.name = member.name[len(prefix) :]
                members.append(member)
        tar.extractall(tree, members=members, filter="data")
    (tree / ".complete").write_text("ok\n")
    return tree


def _run(cmd: list[str], progress: Callable[[str], None], *, quiet: bool) -> None:
    tail: collections.deque[str] = collections.deque(maxlen=30)
    last_pct = ""
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if not quiet and line.startswith("[") and "%]" in line:
                pct = line[: line.index("%]") + 2]
                if pct != last_pct:
                    last_pct = pct
                    progress(f"  {line[:110]}")
        code = proc.wait()
    if code != 0:
        sys.stderr.write("\n".join(tail) + "\n")
        raise BackendUnavailableError(
            f"{' '.join(cmd[:3])} ... failed with exit code {code} (output above); fix: {FIX}"
        )
