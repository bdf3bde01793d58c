"""The compiled node-tool client (bin/_fake_tool.c), built once per machine and source version.

Every tool call in a node script used to start a Python interpreter (~15 ms of CPU); at a thousand
nodes those starts were most of the twin's time. The C client does the same work in well under a
millisecond. It is built with the machine's C compiler into the user's cache, keyed by the source's
hash, so concurrent twins (test processes) share one build; where no compiler is found the wrappers
fall back to the reference client, bin/_fake_tool.py, which speaks the same wire format.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "bin" / "_fake_tool.c"
_COMPILERS = ("cc", "gcc", "clang")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kcluster" / "twin"


def _compiler() -> str | None:
    return next((found for name in _COMPILERS if (found := shutil.which(name))), None)


@cache
def compiled_client() -> Path | None:
    """The built client's path, building it first if this source version has not been built; None
    when the machine has no C compiler (the wrappers then run the Python client)."""
    compiler = _compiler()
    if compiler is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"kcluster-node-tool-{digest}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: a concurrent build never exposes half a binary.
    fd, partial = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
    os.close(fd)
    command = [
        compiler,
        "-O2",
        "-Wall",
        "-Werror",
        "-std=c11",
        "-D_DEFAULT_SOURCE",
        "-o",
        partial,
        str(SOURCE),
    ]
    try:
        built = subprocess.run(command, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"building {SOURCE.name} failed ({' '.join(command)}):\n{built.stderr}")
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target
