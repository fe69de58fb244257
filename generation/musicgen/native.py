"""The int8 product and key/value cache kernels of `int8_gemm.c`, compiled on first use where the
CPU and a C compiler allow.

Nothing is built at install time: the first model loaded in int8 on a CPU with AVX-512 VNNI
compiles the kernel with the system's C compiler (a second or two) into Restyle's cache folder,
named by a hash of its source and flags, and later runs load it from there. Without VNNI, without
a compiler (the slim Docker image has none) or if the build fails, `int8_gemm()` is None and the
int8 layers use torch's own weight-only kernel instead (slower, same weights; see quantize.py),
with a bfloat16 key/value cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("int8_gemm.c")
FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-fopenmp", "-shared", "-fPIC")
REQUIRED_CPU_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")
_POINTER = ctypes.c_void_p
_ARGUMENTS = [_POINTER, _POINTER, *[ctypes.c_int] * 4, *[_POINTER] * 4]


def cpu_has_vnni() -> bool:
    """AVX-512 with VNNI, read from the kernel's own list (Linux): what the compiled code needs."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    lines = [line for line in info.splitlines() if line.startswith("flags")]
    flags = lines[0].split(":", 1)[1].split() if lines else []
    return all(flag in flags for flag in REQUIRED_CPU_FLAGS)


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "restyle" / "kernels"


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(target: Path, cc: str) -> None:
    """Compile into a temporary file beside `target`, then rename: concurrent first runs are safe."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as scratch:
        partial = Path(scratch.name)
    try:
        command = [cc, *FLAGS, str(SOURCE), "-o", str(partial)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@cache
def native_library() -> ctypes.CDLL | None:
    """`int8_gemm.c` compiled and loaded, or None where it cannot run here (the reason is logged)."""
    cc = compiler()
    if sys.platform != "linux" or not cpu_has_vnni() or cc is None:
        log.info("int8 layers use torch's kernel: no AVX-512 VNNI or no C compiler here")
        return None
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join((cc, *FLAGS)).encode()).hexdigest()[:16]
    target = cache_folder() / f"int8_gemm-{digest}.so"
    try:
        if not target.exists():
            build(target, cc)
        torch.ones(1).sum()  # torch's OpenMP runtime is loaded first, so the kernel shares its threads
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("int8 layers use torch's kernel: building %s failed (%s)", target.name, error)
        return None


def _typed(name: str, arguments: list, result=None):
    library = native_library()
    if library is None:
        return None
    function = getattr(library, name)
    function.argtypes, function.restype = arguments, result
    return function


def int8_gemm():
    """The compiled `restyle_int8_gemm`, or None where the library cannot run here."""
    return _typed("restyle_int8_gemm", _ARGUMENTS, ctypes.c_int)


def kv_kernels():
    """(`restyle_kv_store`, `restyle_kv_attend`) for the int8 key/value cache, or None."""
    store = _typed("restyle_kv_store", [_POINTER, _POINTER, *[ctypes.c_int] * 9, *[_POINTER] * 4])
    attend = _typed(
        "restyle_kv_attend",
        [_POINTER, *[ctypes.c_int] * 7, _POINTER, ctypes.c_int, ctypes.c_float, *[_POINTER] * 5],
    )
    return None if store is None else (store, attend)
