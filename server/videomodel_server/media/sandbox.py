"""Confine a decode worker: no network, no files beyond the libraries it runs (Linux).

A worker parses untrusted bytes with FFmpeg; :func:`confine` is called once, after its imports
and before its first job, and limits what a compromised decoder could do:

* **seccomp** (all threads, ``TSYNC``): ``socket()`` fails with EPERM, whatever the family (no
  TCP, UDP, raw or netlink socket, and no UNIX socket to connect to a daemon's, which Landlock
  does not cover); so do ``io_uring_setup`` (io_uring could open sockets past the filter) and any
  syscall of a foreign ABI (x32, ``int 0x80``). The worker needs no new socket: its channel to
  the API process exists before the filter, and descriptors arrive over it.
* **Landlock** (the calling thread and every thread it starts later, such as FFmpeg's frame
  threads): read-only access to the interpreter's prefixes and ``sys.path`` (lazy imports) and
  ``/usr``, ``/lib*``; write access to nothing but this process's own ``/proc/<pid>`` (the peak
  RSS reset); no exec anywhere; TCP connect and bind refused (ABI >= 4); abstract UNIX sockets and
  signals scoped to the worker (ABI >= 6). The media arrives as an already-open descriptor, so
  the job needs no path at all.

Both are best effort: where the kernel (or a container's seccomp profile) does not offer one,
the worker runs without it and :func:`confine` says so in its result. Threads that existed
before the call (idle BLAS/OpenCV pools started at import) are covered by seccomp but not by
Landlock, which restricts only the calling thread and its descendants.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# -- seccomp -------------------------------------------------------------------------------------

_SECCOMP_ARCH = {
    # machine: (AUDIT_ARCH_*, __NR_socket, has x32 ABI)
    "x86_64": (0xC000003E, 41, True),
    "aarch64": (0xC00000B7, 198, False),
}
_NR_IO_URING_SETUP = 425  # the same number on every architecture
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | 1


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program(arch: int, nr_socket: int, x32: bool) -> list[tuple[int, int, int, int]]:
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    # 6 = allow, 7 = deny (jump offsets count from the next instruction).
    return [
        (ld, 0, 0, 4),  # 0: arch
        (jeq, 0, 5, arch),  # 1: foreign ABI -> deny
        (ld, 0, 0, 0),  # 2: syscall number
        (jeq, 3, 0, nr_socket),  # 3: socket -> deny
        (jeq, 2, 0, _NR_IO_URING_SETUP),  # 4: io_uring_setup -> deny
        (jge, 1, 0, 0x40000000) if x32 else (jeq, 1, 0, 0xFFFFFFFF),  # 5: x32 -> deny
        (ret, 0, 0, _RET_ALLOW),  # 6
        (ret, 0, 0, _RET_EPERM),  # 7
    ]


def _install_seccomp() -> str:
    spec = _SECCOMP_ARCH.get(platform.machine())
    if spec is None:
        return f"seccomp: not on {platform.machine()}"
    program = _seccomp_program(*spec)
    filters = (_SockFilter * len(program))(*(_SockFilter(*ins) for ins in program))
    prog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return f"seccomp: no_new_privs refused ({os.strerror(ctypes.get_errno())})"
    # seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog): every thread at once.
    nr_seccomp = 317 if platform.machine() == "x86_64" else 277
    if libc.syscall(nr_seccomp, 1, 1, ctypes.byref(prog)) != 0:
        return f"seccomp: refused ({os.strerror(ctypes.get_errno())})"
    return "seccomp: socket() refused"


# -- Landlock --------------------------------------------------------------------------------------

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR, _FS_TRUNCATE = 1, 2, 4, 8, 1 << 14
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_FS_ALL_LATEST = (1 << 16) - 1  # ABI 5 added IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def readable_roots() -> list[str]:
    """Where a worker may read: the interpreter, its libraries and import path (never ``/``)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr", "/lib", "/lib64"}
    roots.update(p for p in sys.path if p)
    found = []
    for root in sorted(roots):
        real = os.path.realpath(root)
        if real != "/" and os.path.exists(real):
            found.append(real)
    return found


def _install_landlock() -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return f"landlock: unavailable ({os.strerror(ctypes.get_errno())})"
    fs_all = _FS_ALL_BY_ABI.get(abi, _FS_ALL_LATEST)
    attr = _RulesetAttr(fs_all, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"landlock: ruleset refused ({os.strerror(ctypes.get_errno())})"
    try:
        rules = [(root, _FS_READ_FILE | _FS_READ_DIR) for root in readable_roots()]
        own = _FS_READ_FILE | _FS_READ_DIR | _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
        rules.append((f"/proc/{os.getpid()}", own))  # reset_peak_rss opens clear_refs with O_TRUNC
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    access &= _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE
                beneath = _PathBeneath(access, fd)
                libc.syscall(445, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(beneath), ctypes.c_uint32(0))
            finally:
                os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) != 0:
            return f"landlock: no_new_privs refused ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"landlock: refused ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return f"landlock ABI {abi}: files read-only under the interpreter and libraries, TCP refused"


def confine() -> list[str]:
    """Apply both layers to this process (a decode worker); return what each did."""
    if sys.platform != "linux":
        return [f"sandbox: not on {sys.platform}"]
    done = []
    for layer in (_install_landlock, _install_seccomp):
        try:
            done.append(layer())
        except Exception as exc:  # never fail a worker's start-up over its sandbox
            done.append(f"{layer.__name__}: {exc!r}")
    return done
