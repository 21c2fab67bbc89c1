"""The file store: bytes kept outside the database, once per content, named by SHA-256.

Materials, notice PDFs and signed-document scans live here. A file is never executed
and never served inline: the API hands it out as an attachment to those allowed. The
type of an upload is read from its bytes (magic numbers), never from its name, so a
script renamed to ``.pdf`` is refused.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import platform_state
from engine.db import dialect_insert
from engine.errors import Conflict, DomainError, Invalid
from engine.models import StoredFile
from engine.settings import VAR

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: The longest name an uploaded file keeps.
MAX_FILENAME = 255
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: The file in a store's root naming the platform (database) it belongs to.
BINDING = "PLATFORM"
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029<>:"|?*]')

#: media type → what the regulations call it (the accepted kinds of 申报材料)
ACCEPTED_TYPES = {
    "application/pdf": "PDF",
    "application/ofd": "OFD",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "application/msword": "DOC",
    "application/vnd.ms-excel": "XLS",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def max_upload_bytes() -> int:
    """TZXM_MAX_UPLOAD_BYTES, 50 MB when unset (a value that is not a positive integer
    is a configuration error, reported as such rather than silently replaced)."""
    raw = os.environ.get("TZXM_MAX_UPLOAD_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"TZXM_MAX_UPLOAD_BYTES must be a positive integer, not {raw!r}")
    return int(raw)


def store_root() -> Path:
    """TZXM_FILES_DIR, var/files when unset: configuration, not process state."""
    return Path(os.environ.get("TZXM_FILES_DIR") or VAR / "files")


def _zip_kind(data: bytes) -> str | None:
    """OOXML (DOCX/XLSX) and OFD are zip containers: tell them apart by their parts.

    Only the central directory is read (nothing is decompressed, so a zip bomb costs
    nothing). A macro-enabled document (a ``vbaProject.bin`` part: DOCM/XLSM) is not
    among the accepted kinds: material is read by people, never run.
    """
    try:
        names = set(zipfile.ZipFile(BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError):
        return None
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        return None
    if "OFD.xml" in names:
        return "application/ofd"
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        if any(n.startswith("xl/") for n in names):
            return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return None


#: OLE2 directory entries are 128 bytes, aligned on 128 within sectors of 512 or 4096
#: bytes after the 512-byte header: the name (UTF-16LE, NUL-terminated, 64 bytes), its
#: length in bytes including the NUL (uint16 at +64), the object type (+66, 2 = stream).
_OLE_ENTRY = 128
_OLE_STREAM = 2


def _ole_stream(data: bytes, name: str) -> bool:
    """Whether a directory entry names a stream ``name`` (not merely those bytes anywhere)."""
    encoded = name.encode("utf-16-le") + b"\x00\x00"
    for match in re.finditer(re.escape(encoded), data):
        at = match.start()
        if at < 512 or at % _OLE_ENTRY or at + 67 > len(data):
            continue
        if int.from_bytes(data[at + 64:at + 66], "little") == len(encoded) and data[at + 66] == _OLE_STREAM:
            return True
    return False


def _ole_kind(data: bytes) -> str | None:
    """Legacy Word and Excel are OLE2 compound files; their stream names tell which
    (an MSI installer or an Outlook message is OLE2 too, and is refused)."""
    if _ole_stream(data, "WordDocument"):
        return "application/msword"
    if _ole_stream(data, "Workbook") or _ole_stream(data, "Book"):
        return "application/vnd.ms-excel"
    return None


def sniff(data: bytes) -> str | None:
    """The media type the bytes say they are, among the accepted kinds; None otherwise."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if data.startswith(OLE2):
        return _ole_kind(data)
    return None


def accepted_type(data: bytes, field: str = "file") -> str:
    """The upload's media type, or a 422 naming the field and the accepted kinds."""
    media_type = sniff(data)
    if media_type is None:
        kinds = "、".join(dict.fromkeys(ACCEPTED_TYPES.values()))
        raise Invalid.field(field, f"文件类型不受支持，仅接受 {kinds} (file content is not an accepted type)")
    return media_type


def _sync_directory(path: Path) -> None:
    """Make a name created or renamed in ``path`` durable (POSIX: the directory's own fsync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FileStore:
    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, session: Session, data: bytes, media_type: str, *, now: datetime) -> str:
        """Store the bytes once (same content, same file) and return their SHA-256 (the
        row's key: nobody needs the row itself, so it is not read back).

        The file is written before the row, atomically by rename, so a row never points
        at a half-written file; a rolled-back request leaves at most an unreferenced
        file, never a dangling row. It is on disk (its bytes, then its name) before the
        row can commit: the database keeps a committed row through a power cut, and the
        material it names must survive with it.
        """
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        try:
            os.utime(target)  # kept: touched, so ``prune`` leaves it to the row this request writes
        except FileNotFoundError:
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                _sync_directory(self.root)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _sync_directory(target.parent)
        if not (self.root / BINDING).exists():
            self._bind_to_writer(session)
        # Two requests storing the same new bytes at once both insert: the second is a no-op.
        session.execute(
            dialect_insert(session)(StoredFile)
            .values(sha256=digest, size=len(data), media_type=media_type, created_at=now)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        return digest

    def belongs_to(self, session: Session, names: list[str]) -> bool:
        """Whether the database names any of these files of the store (asked 500 at a time,
        stopping at the first that does: on the store's own database, the first ask)."""
        return any(session.scalar(select(StoredFile.sha256).where(StoredFile.sha256.in_(names[i:i + 500])).limit(1))
                   for i in range(0, len(names), 500))

    def prune(self, session: Session, *, older_than: datetime, force: bool = False) -> list[str]:
        """Delete the files no row names, untouched since ``older_than``: those a rolled-back
        request left (the file is written before its row), and the temporary files of a
        crash mid-write. Returns their names.

        A request storing bytes touches or writes their file before its row commits, so
        a file still untouched after a cutoff of hours belongs to no request in flight.
        The file is first renamed aside and its time read again: a request that touched
        it meanwhile has it put back; one coming after the rename finds no file and writes
        its own (``put``)."""
        cutoff = older_than.timestamp()
        files_, leftovers, present = {}, [], []
        for path in self.root.glob("??/*"):
            if _SHA256.fullmatch(path.name):
                present.append(path.name)
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:  # renamed meanwhile (a write finishing, another prune)
                continue
            if _SHA256.fullmatch(path.name) and path.name.startswith(path.parent.name):
                files_[path.name] = path
            elif path.name.startswith((".upload-", ".prune-")):
                leftovers.append(path)  # a write that never finished; a prune stopped midway
        self._bind(session, present, force=force)
        names = sorted({*files_, *(p.name.removeprefix(".prune-") for p in leftovers)})
        named = set()
        for i in range(0, len(names), 500):
            named.update(session.scalars(select(StoredFile.sha256).where(StoredFile.sha256.in_(names[i:i + 500]))))
        pruned = []
        for name, path in sorted(files_.items()):
            if name in named:
                continue
            aside = path.with_name(f".prune-{name}")
            try:
                os.replace(path, aside)
                touched = aside.stat().st_mtime >= cutoff
            except FileNotFoundError:
                continue
            if touched:
                os.replace(aside, path)  # touched by a request meanwhile: its row is coming
                continue
            aside.unlink()
            pruned.append(name)
        for path in leftovers:
            target = path.with_name(path.name.removeprefix(".prune-"))
            if target.name in named and not target.exists():
                os.replace(path, target)  # set aside by a prune stopped midway, and a row names it: back
                continue
            path.unlink(missing_ok=True)
            pruned.append(path.name)
        return pruned

    def _bind(self, session: Session, present: list[str], *, force: bool) -> None:
        """Whether this database is the store's, before a prune deletes anything. A store is
        bound to one platform (``PLATFORM`` holds its database's ``platform_id``) by the first
        file written (``put``) or else by the first prune: a prune with another platform's
        database, which may name some of the same files, is refused. A store not yet bound
        is bound by a prune only when the database names some of its files (or it holds
        none): a database naming none would see every file as unreferenced. ``force``: the
        operator says this database is the store's, and the store is bound to it."""
        identity = platform_state.platform_id(session)
        if identity is None:
            raise Conflict("数据库尚无平台标识，请先运行 tzxm db upgrade，未删除任何文件 (the database has no platform "
                           "identity yet: run `tzxm db upgrade`; nothing deleted)")
        try:
            bound = (self.root / BINDING).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            bound = None
        if bound == identity:
            return
        if not force and bound is not None:
            raise Conflict(f"文件库 {self.root} 属于另一个平台的数据库，未删除任何文件 (the store {self.root} is bound to "
                           f"another platform's database, {bound}, not {identity}: is DATABASE_URL this platform's? "
                           f"nothing deleted; --force prunes anyway and binds the store to this database)")
        if not force and present and not self.belongs_to(session, present):
            raise Conflict(f"文件库 {self.root} 与该数据库不匹配：数据库登记的文件都不在此处，未删除任何文件 "
                           f"(the database names none of the files in {self.root}: is DATABASE_URL this platform's? "
                           f"nothing deleted; --force prunes anyway)")
        self._write_binding(identity, replace=True)

    def _bind_to_writer(self, session: Session) -> None:
        """The first file written binds the store to the database it is written for (a
        database without an identity, before ``tzxm db upgrade``, binds nothing)."""
        identity = platform_state.platform_id(session)
        if identity is not None:
            self._write_binding(identity, replace=False)

    def _write_binding(self, identity: str, *, replace: bool) -> None:
        """Written whole, then put in place: by rename (``replace``), or by a link that leaves
        a binding another writer made first as it is."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".binding-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(identity + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if replace:
                os.replace(tmp, self.root / BINDING)
            else:
                try:
                    os.link(tmp, self.root / BINDING)
                except FileExistsError:
                    pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _sync_directory(self.root)

    def read(self, sha256: str) -> bytes:
        """The stored bytes, checked against their name. A missing or altered file raises
        FileNotFoundError alike: it is never served as though it were what was uploaded
        (a notice is rendered again; a material is reported as FileDamaged)."""
        data = self.path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise FileNotFoundError(f"stored file altered: {sha256}")
        return data


class FileDamaged(DomainError):
    """500: the file store lost or altered bytes the database points at (an operator's matter)."""

    status = 500

    def __init__(self, sha256: str):
        super().__init__(f"存储的文件缺失或已损坏 (the stored file is missing or damaged): {sha256}")


def store() -> FileStore:
    return FileStore(store_root())


def clean_filename(filename: str | None, max_length: int = MAX_FILENAME) -> str:
    """The uploaded name as plain text: its last path segment only (a browser may send a
    whole path), without control or markup characters, at most ``max_length`` characters with
    the extension kept. The name is only shown and offered back on download, never used as a path."""
    name = unicodedata.normalize("NFC", filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().strip(".").strip()
    if not name:
        raise Invalid.field("file", "缺少文件名 (the file has no name)")
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and stem and len(ext) <= 16 else ""
        name = name[: max_length - len(ext)] + ext
    return name
