"""OpenSSL's SHA-256, callable from compiled kernels: the libcrypto that Python's hashlib itself calls, through
its EVP digest interface (OpenSSL 3). hashlib costs about 0.5 us of Python per hash, which at 3,000,000
hashes for a million-account tree is most of `solvent prove`; a kernel calling the same library per row pays
a few tens of nanoseconds beside the hash, and releases the GIL so that threads share the rows. No hashing is
our own: the kernels only lay out each preimage and call these functions.

A kernel makes one context per thread (`md_ctx_new`, freed by `md_ctx_free`), then per hash
`digest_init(ctx, SHA256, 0)`, `digest_update(ctx, pointer, size)` and `digest_final(ctx, out pointer, 0)`; each
returns 1 on success.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from typing import Final

from solvent._numba import c_function


def _library() -> str:
    """The path or soname of libcrypto 3 (RuntimeError where there is none: the compiled tree needs it)."""
    name = ctypes.util.find_library("crypto")
    if name is None or not hasattr(ctypes.CDLL(name), "EVP_DigestInit_ex2"):
        raise RuntimeError(f"solvent prove needs OpenSSL 3's libcrypto (found {name!r})")
    return name


_LIBRARY: Final = _library()
md_ctx_new = c_function(_LIBRARY, "EVP_MD_CTX_new", "intp", 0)
md_ctx_free = c_function(_LIBRARY, "EVP_MD_CTX_free", "void", 1)
digest_init = c_function(_LIBRARY, "EVP_DigestInit_ex2", "int32", 3)
digest_update = c_function(_LIBRARY, "EVP_DigestUpdate", "int32", 3)
digest_final = c_function(_LIBRARY, "EVP_DigestFinal_ex", "int32", 3)


def _sha256() -> int:
    """OpenSSL's SHA-256 implementation, fetched once (an `EVP_MD *` as an integer)."""
    fetch = ctypes.CDLL(_LIBRARY).EVP_MD_fetch
    fetch.restype, fetch.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    md = fetch(None, b"SHA256", None)
    if not md:
        raise RuntimeError("OpenSSL's libcrypto has no SHA256")
    return int(md)


#: The `EVP_MD *` of SHA-256, for the kernels' `digest_init`.
SHA256: Final = _sha256()
#: SHA-256's output and block sizes (bytes).
DIGEST_BYTES: Final = hashlib.sha256().digest_size
BLOCK_BYTES: Final = hashlib.sha256().block_size
