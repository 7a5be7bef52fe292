"""OpenSSL's SHA-256, callable from compiled kernels: the libcrypto that Python's hashlib itself calls, through
its EVP digest interface (OpenSSL 1.1 or 3). hashlib costs about 0.5 us of Python per hash, which at 3,000,000
hashes for a million-account tree is most of `solvent prove`; a kernel calling the same library per row pays
a few tens of nanoseconds beside the hash, and releases the GIL so that threads share the rows. No hashing is
our own: the kernels only lay out each preimage and call these functions.

`sha256()` loads the library (once; the kernels link its functions by name) and returns SHA-256's `EVP_MD *`.
A kernel makes one context per thread (`md_ctx_new`, freed by `md_ctx_free`), then per hash
`digest_init(ctx, md, 0)`, `digest_update(ctx, pointer, size)` and `digest_final(ctx, out pointer, 0)`; each
returns 1 on success.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
from typing import Final

from solvent._numba import c_function, load_library

md_ctx_new = c_function("EVP_MD_CTX_new", "intp", 0)
md_ctx_free = c_function("EVP_MD_CTX_free", "void", 1)
digest_init = c_function("EVP_DigestInit_ex", "int32", 3)
digest_update = c_function("EVP_DigestUpdate", "int32", 3)
digest_final = c_function("EVP_DigestFinal_ex", "int32", 3)
#: SHA-256's block (bytes), HMAC's key width.
BLOCK_BYTES: Final = hashlib.sha256().block_size


def _hashlib_libcrypto() -> str | None:
    """The path of the libcrypto that Python's own `_hashlib` has loaded (Linux: read from /proc/self/maps), for
    systems where `ctypes.util.find_library` finds none (no ldconfig in a slim container)."""
    import _hashlib  # noqa: F401  # loads libcrypto into this process

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcrypto" in path:
                    return path
    except OSError:
        pass
    return None


@functools.cache
def sha256() -> int:
    """SHA-256's `EVP_MD *` as an integer, with libcrypto loaded for the kernels: fetched once from OpenSSL 3's
    default provider (so that no hash fetches it again), `EVP_sha256()` from OpenSSL 1.1. RuntimeError where
    there is no libcrypto."""
    name = ctypes.util.find_library("crypto") or _hashlib_libcrypto()
    if name is None:
        raise RuntimeError("solvent prove hashes with OpenSSL's libcrypto (1.1 or 3), which was not found")
    load_library(name)
    library = ctypes.CDLL(name)
    if hasattr(library, "EVP_MD_fetch"):
        fetch = library.EVP_MD_fetch
        fetch.restype, fetch.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        md = fetch(None, b"SHA256", None)
    else:
        library.EVP_sha256.restype = ctypes.c_void_p
        md = library.EVP_sha256()
    if not md:
        raise RuntimeError(f"OpenSSL's libcrypto ({name}) has no SHA-256")
    return int(md)
