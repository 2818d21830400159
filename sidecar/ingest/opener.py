"""The one opener for files under a watch: containment at the moment of opening (DESIGN §5).

Everything the ingest part does with a watched folder — the reconciliation scan, classifying
watcher events, checking that a source still exists, hashing and reading a file — goes through
a :class:`WatchRoot`, so one rule holds everywhere:

* a path is opened **relative to a directory descriptor of the watch root, one component at a
  time** (``openat`` with ``O_NOFOLLOW``): a symlink in *any* component — a subfolder swapped
  for a symlink, also by an atomic rename-exchange between a scan and a read — makes the open
  fail (``ELOOP``/``ENOTDIR``) instead of leading out of the root. ``..`` never appears (paths
  are normalised below the root and such a component is refused);
* the root itself is opened with ``O_NOFOLLOW`` from its resolved path, so a root replaced by a
  symlink is refused too;
* after reading, the opened file's identity (device, inode, size, mtime) is compared with what
  the name points to now: a file replaced or changed while being read is not taken.

**File names that are not UTF-8.** Names are decoded by Python with ``surrogateescape``; SQLite
and JSON cannot hold such strings. Below a root, each component is stored *escaped*, losslessly:
a byte that is not UTF-8 becomes ``\\xNN`` and a backslash becomes ``\\\\`` (so the mapping is
one-to-one); :func:`escape_name` / :func:`unescape_name` convert. The root part of a path is
the watch's own path (valid text, never escaped). Queue rows, provenance and the API all carry
the escaped form, which is also how such a name is shown.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from sidecar.ingest import paths as path_rules

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOCTTY: a tty never becomes ours.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_UNESCAPE_RE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def escape_name(name: str) -> str:
    """A file-name component as stored and shown: undecodable bytes (surrogate-escaped by
    ``os.fsdecode``) as ``\\xNN``, backslashes doubled; valid names without backslashes are
    unchanged. Inverse: :func:`unescape_name`."""
    if "\\" not in name and name.isprintable() and _encodable(name):
        return name
    out = []
    for ch in name.replace("\\", "\\\\"):
        code = ord(ch)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else ch)
    return "".join(out)


def unescape_name(name: str) -> bytes:
    """The on-disk bytes of a component stored by :func:`escape_name`."""
    def one(m: re.Match[str]) -> str:
        g = m.group(1)
        return "\\" if g == "\\" else chr(0xDC00 + int(g[1:], 16))

    return os.fsencode(_UNESCAPE_RE.sub(one, name))


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display(text: str) -> str:
    """Any text that may hold surrogate-escaped bytes, made storable (``\\xNN``) for messages."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def stored_path(fs_path: str, root: str) -> str | None:
    """The stored (escaped) form of a path from the OS (``os.fsdecode`` text) below ``root``,
    or None when it is not below it."""
    parts = path_rules.relative_parts(fs_path, root)
    if parts is None:
        return None
    return os.path.join(root, *(escape_name(p) for p in parts)) if parts else root


class Refused(Exception):
    """A path under a watch could not be opened safely. ``outcome`` is the queue status it
    leads to (``gone``, ``skipped`` or ``error``); ``reason`` says why, for the user."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


@dataclass(frozen=True)
class Found:
    """A candidate file of a scan: its (escaped) path, ``lstat`` size (bytes) and mtime (ns)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Walk:
    """The result of :meth:`WatchRoot.walk`."""

    files: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing_root: bool = False
    #: set when the walk stopped at the files-per-watch cap
    capped: bool = False


@dataclass(frozen=True)
class Read:
    """The bytes of a file read by :meth:`WatchRoot.read` and its ``fstat`` before reading."""

    data: bytes
    st: os.stat_result


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class WatchRoot:
    """Opens, lists and checks paths below one watched folder (see the module docstring).

    Args:
        root: the watch's path as stored (absolute, normalised). Paths handed to the methods
            are this root followed by escaped components, as :meth:`walk` produces them.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)

    # -- paths --------------------------------------------------------------------------------

    def path_of(self, fs_path: str) -> str | None:
        """The stored (escaped) form of ``fs_path`` (see :func:`stored_path`)."""
        return stored_path(fs_path, self.root)

    def _components(self, path: str) -> list[bytes]:
        parts = path_rules.relative_parts(path, self.root)
        if parts is None:
            raise Refused("skipped", "no longer inside the watch's folders")
        out = [unescape_name(p) for p in parts]
        if any(p in (b".", b"..") for p in out):
            raise Refused("skipped", "path leads outside the watched folder")
        return out

    # -- descriptors --------------------------------------------------------------------------

    def _open_root(self) -> int:
        try:
            return os.open(self.real_root, _DIR_FLAGS)
        except FileNotFoundError:
            raise Refused("gone", f"watched folder {self.root} does not exist") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Refused("error", f"watched folder {self.root} was replaced by a symlink or a file") from None
            raise Refused("error", f"cannot open watched folder: {_os_reason(exc)}") from None

    @contextlib.contextmanager
    def _parent(self, comps: list[bytes]) -> Iterator[int]:
        """A descriptor of the folder holding ``comps[-1]``, reached without following links."""
        fd = self._open_root()
        try:
            for comp in comps[:-1]:
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise Refused("gone", "a folder on its path no longer exists") from None
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise Refused("skipped", "a folder on its path is a symlink or not a folder"
                                      " (symlinks are not followed)") from None
                    if exc.errno == errno.EACCES:
                        raise Refused("error", "permission denied") from None
                    raise Refused("error", f"cannot open a folder on its path: {_os_reason(exc)}") from None
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    def lstat(self, path: str) -> os.stat_result | None:
        """``lstat`` of ``path`` reached component by component; None when it does not exist
        (or cannot be reached without following a symlink). Raises :class:`Refused` for other
        failures."""
        comps = self._components(path)
        try:
            if not comps:
                fd = self._open_root()
                try:
                    return os.fstat(fd)
                finally:
                    os.close(fd)
            with self._parent(comps) as dfd:
                return os.stat(comps[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except Refused as exc:
            if exc.outcome in ("gone", "skipped"):
                return None
            raise

    def exists(self, path: str) -> bool:
        """True when ``path`` exists below the root (reached without following links)."""
        try:
            return self.lstat(path) is not None
        except Refused:
            return True  # there but unreadable: not gone

    def read(self, path: str, max_bytes: int) -> Read:
        """Open ``path`` safely and read it whole (at most ``max_bytes``).

        Raises:
            Refused: ``gone`` (vanished, before or while reading), ``skipped`` (symlink in any
                component, not a regular file, over ``max_bytes``), ``error`` (permission
                denied, I/O error), or ``later`` (changed or replaced while being read).
        """
        comps = self._components(path)
        if not comps:
            raise Refused("skipped", "not a regular file")
        with self._parent(comps) as dfd:
            try:
                ffd = os.open(comps[-1], _FILE_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                raise Refused("gone", "file vanished before it could be read") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise Refused("skipped", "symlink (symlinks are not followed)") from None
                if exc.errno in (errno.EACCES, errno.EPERM):
                    raise Refused("error", "permission denied") from None
                if exc.errno in (errno.ENXIO, errno.EISDIR):
                    raise Refused("skipped", "not a regular file") from None
                raise Refused("error", f"cannot open file: {_os_reason(exc)}") from None
            try:
                st = os.fstat(ffd)
                if not stat.S_ISREG(st.st_mode):
                    raise Refused("skipped", "not a regular file")
                if st.st_size > max_bytes:
                    raise Refused("skipped", f"too large: {st.st_size} bytes (limit {max_bytes})")
                chunks, total = [], 0
                while total <= max_bytes:
                    chunk = os.read(ffd, min(1 << 20, max_bytes + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
                if total > max_bytes:
                    raise Refused("skipped", f"too large: grew past {max_bytes} bytes while being read")
                after = os.fstat(ffd)
            except OSError as exc:
                raise Refused("error", f"cannot read file: {_os_reason(exc)}") from None
            finally:
                os.close(ffd)
            # Identity: the name must still point to the file we read, unchanged.
            try:
                now = os.stat(comps[-1], dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise Refused("gone", "file vanished while being read") from None
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) \
                    or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise Refused("later", "changed while being read")
        return Read(b"".join(chunks), st)

    # -- listing ------------------------------------------------------------------------------

    def walk(self, extensions: Collection[str], *, start: str | None = None, max_files: int | None = None) -> Walk:
        """List candidate files (:func:`sidecar.ingest.paths.is_candidate`) below ``start``
        (default: the root) with their ``lstat`` size and mtime, never entering a symlinked
        folder (``os.fwalk`` from a descriptor of the root; it re-checks each folder's identity).
        Blocking: call in a thread. Stops after ``max_files`` candidates (``capped``)."""
        out = Walk()
        try:
            comps = self._components(start) if start else []
        except Refused:
            return out
        try:
            ctx = self._parent([*comps, b""])
            top_fd = ctx.__enter__()
        except Refused as exc:
            out.missing_root = exc.outcome == "gone" and not comps
            if exc.outcome == "error":
                out.problems.append(f"{start or self.root}: {exc.reason}")
            return out
        base = start or self.root

        def onerror(exc: OSError) -> None:
            out.problems.append(f"{display(str(exc.filename))}: {_os_reason(exc)}")

        try:
            for dirpath, dirnames, filenames, dfd in os.fwalk(".", onerror=onerror, dir_fd=top_fd):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = [] if dirpath == "." else dirpath[2:].split(os.sep)
                folder = os.path.join(base, *(escape_name(p) for p in rel))
                for name in filenames:
                    if path_rules.ignored_name(name):
                        continue
                    path = os.path.join(folder, escape_name(name))
                    if not path_rules.is_candidate(path, self.root, extensions):
                        continue
                    try:
                        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    except OSError:
                        continue  # vanished between listing and stat
                    if stat.S_ISDIR(st.st_mode):
                        continue
                    out.files.append(Found(path, st.st_size, st.st_mtime_ns))
                    if max_files is not None and len(out.files) >= max_files:
                        out.capped = True
                        return out
        finally:
            ctx.__exit__(None, None, None)
        return out


# -- which folders may be watched -------------------------------------------------------------

#: File system types that are views of the kernel or of devices, not the user's files.
PSEUDO_FS: frozenset[str] = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs",
    "selinuxfs", "rpc_pipefs", "nsfs", "ramfs", "nfsd", "fuse.gvfsd-fuse", "fuse.portal",
})
#: Folders that hold the system, not a user's documents: never a watch root, nor anything below
#: the first four.
_SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run")
_SYSTEM_ROOTS = frozenset({"/", "/bin", "/boot", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
                           "/opt", "/root", "/sbin", "/srv", "/usr", "/var", "/Users", "/Volumes",
                           "/System", "/Library", "/private", "/snap"})


def _fs_type(real: str) -> str | None:
    """The file system type of the mount holding ``real`` (longest mount point prefix)."""
    import psutil

    best, fstype = "", None
    try:
        parts = psutil.disk_partitions(all=True)
    except Exception:
        return None
    for part in parts:
        mp = part.mountpoint
        if (real == mp or real.startswith(mp.rstrip(os.sep) + os.sep)) and len(mp) > len(best):
            best, fstype = mp, part.fstype
    return fstype


def unwatchable(path: str) -> str | None:
    """Why ``path`` (absolute, existing folder) may not be a watch root, or None when it may.

    Refused: the file system root and top-level system folders (``/etc``, ``/usr``, ``/home``,
    …), anything on or below ``/proc``, ``/sys``, ``/dev``, ``/run`` or on a pseudo file system
    (:data:`PSEUDO_FS`), the user's home folder itself and any folder above it. Checked on the
    resolved path, so a symlink to one of them is refused too.
    """
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    if real in _SYSTEM_ROOTS or real == os.sep:
        return f"{path} is a system folder; pick a folder of your own documents"
    if any(real == t or real.startswith(t + os.sep) for t in _SYSTEM_TREES):
        return f"{path} is a system or device folder; pick a folder of your own documents"
    if real == home or home.startswith(real.rstrip(os.sep) + os.sep):
        return f"{path} is your whole home folder; pick one folder inside it (e.g. Documents)"
    fstype = _fs_type(real)
    if fstype in PSEUDO_FS:
        return f"{path} is on a {fstype} pseudo file system, not a folder of documents"
    return None
