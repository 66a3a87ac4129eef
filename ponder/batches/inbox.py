"""Safe access to a nightly run's inbox: a file is opened by name inside the folder's
descriptor, never through a link, read up to a size cap, and moved only while unchanged."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from ponder.config import NightlyRunSettings

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024
HOLDING_PREFIX = ".ponder-archiving-"
"""A file being archived is first renamed to a hidden name no other run lists."""
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""Never follow a link; never block on a FIFO swapped in after the listing."""

SYMLINK = "a symbolic link, not a file: put the file itself in the inbox"


class FileRefused(Exception):
    """A file that cannot be an item. The message says what to fix and never quotes the
    content (it may be PHI); ``seen`` is what the run saw of it, so it can be archived."""

    def __init__(self, message: str, seen: SeenFile | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.seen = seen


@dataclass(frozen=True)
class SeenFile:
    """A directory entry as the run saw it; the archive step moves only this very file."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    sha256: str | None = None
    """Of the bytes read; None for a file refused before its content was read."""

    @classmethod
    def of(cls, st: os.stat_result, sha256: str | None = None) -> SeenFile:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha256)

    def same_entry(self, st: os.stat_result) -> bool:
        return (self.dev, self.ino, self.size, self.mtime_ns) == (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        )


def open_inbox(run: NightlyRunSettings) -> int:
    """A descriptor of the inbox folder: every file is then looked up by name in it, never by
    a path that could lead elsewhere."""
    try:
        return os.open(run.inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise FileNotFoundError(
            f"nightly run {run.name}: inbox {run.inbox} is not a directory"
        ) from exc


def read_capped(inbox_fd: int, name: str, max_bytes: int) -> tuple[bytes, SeenFile]:
    """The content of a regular file of the inbox, opened without following links and read in
    chunks, never more than ``max_bytes`` + 1 bytes. Raises ``FileRefused`` for a link, a
    hard-linked file (its other names may be outside the inbox), a non-file, a larger file."""
    try:
        fd = os.open(name, OPEN_FLAGS, dir_fd=inbox_fd)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            if isinstance(exc, FileNotFoundError):
                raise
            raise FileRefused(
                f"could not be opened ({exc.strerror})", _lstat(inbox_fd, name)
            ) from exc
        st = os.stat(name, dir_fd=inbox_fd, follow_symlinks=False)
        # A symlink now; if it changed again meanwhile, the next run judges what is there.
        raise FileRefused(SYMLINK, SeenFile.of(st) if stat.S_ISLNK(st.st_mode) else None) from exc
    try:
        st = os.fstat(fd)
        seen = SeenFile.of(st)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused("not a regular file", seen)
        if st.st_nlink > 1:
            raise FileRefused(
                f"the file has {st.st_nlink} hard links, so it may also be a file outside the "
                "inbox: copy it into the inbox instead of linking it",
                seen,
            )
        too_large = FileRefused(
            f"larger than {max_bytes} bytes (the run's max_file_bytes): split the document",
            seen,
        )
        if st.st_size > max_bytes:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        try:
            while total <= max_bytes and (
                chunk := os.read(fd, min(READ_CHUNK_BYTES, max_bytes + 1 - total))
            ):
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            raise FileRefused(f"could not be read ({exc.strerror})", seen) from exc
        if total > max_bytes:  # it grew after fstat
            raise too_large
        data = b"".join(chunks)
        return data, SeenFile.of(st, hashlib.sha256(data).hexdigest())
    finally:
        os.close(fd)


def _lstat(inbox_fd: int, name: str) -> SeenFile | None:
    try:
        return SeenFile.of(os.stat(name, dir_fd=inbox_fd, follow_symlinks=False))
    except FileNotFoundError:
        return None


def move_if_unchanged(
    run: NightlyRunSettings, inbox_fd: int, name: str, seen: SeenFile, target: Path
) -> bool:
    """Move the file to ``target`` if it is still the one the run saw; False when it is not
    (it is then back under its name). The file is first renamed to a hidden name in the inbox
    (atomic), so what is compared is what is moved: a file arriving under the name meanwhile
    is never touched."""
    holding = f"{HOLDING_PREFIX}{uuid.uuid4().hex}"
    try:
        os.rename(name, holding, src_dir_fd=inbox_fd, dst_dir_fd=inbox_fd)
    except FileNotFoundError:
        return True  # a concurrent run moved it; its hash is recorded either way
    except OSError:
        logger.warning("nightly run %s: a file could not be archived", run.name, exc_info=True)
        return False  # still in place, under its name
    try:
        if _is_unchanged(inbox_fd, holding, seen):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(run.inbox / holding, target)
            return True
    except OSError:
        logger.warning("nightly run %s: a file could not be archived", run.name, exc_info=True)
    _put_back(inbox_fd, holding, name)
    return False


def _is_unchanged(inbox_fd: int, holding: str, seen: SeenFile) -> bool:
    """Same inode, size and mtime, and (for a file that was read) the same content."""
    if not seen.same_entry(os.stat(holding, dir_fd=inbox_fd, follow_symlinks=False)):
        return False
    if seen.sha256 is None:
        return True
    fd = os.open(holding, OPEN_FLAGS, dir_fd=inbox_fd)
    try:
        if not seen.same_entry(os.fstat(fd)):
            return False
        digest = hashlib.sha256()
        left = seen.size + 1  # bounded: a file that grew differs anyway
        while left > 0 and (chunk := os.read(fd, min(READ_CHUNK_BYTES, left))):
            digest.update(chunk)
            left -= len(chunk)
        return digest.hexdigest() == seen.sha256
    finally:
        os.close(fd)


def _put_back(inbox_fd: int, holding: str, name: str) -> None:
    """Give the file its name again without replacing a file that arrived under it since
    (``link`` fails where ``rename`` would replace); if one did, keep ours under a new name,
    where the next run finds it too."""
    try:
        try:
            os.link(holding, name, src_dir_fd=inbox_fd, dst_dir_fd=inbox_fd, follow_symlinks=False)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: rename, if the name is still free
            if _lstat(inbox_fd, name) is None:
                os.rename(holding, name, src_dir_fd=inbox_fd, dst_dir_fd=inbox_fd)
                return
        else:
            os.unlink(holding, dir_fd=inbox_fd)
            return
        stem, suffix = os.path.splitext(name)
        spare = f"{stem[:50]}-{uuid.uuid4().hex[:8]}{suffix}"  # 50: fits 255 bytes
        os.rename(holding, spare, src_dir_fd=inbox_fd, dst_dir_fd=inbox_fd)
        logger.warning("a file changed under a nightly run was kept under another name")
    except OSError:
        # Not lost, but hidden from the next runs: say where it is (the name is no PHI).
        logger.error("a file changed under a nightly run is left as %s in the inbox", holding)
