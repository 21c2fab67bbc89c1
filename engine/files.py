"""The file store: bytes kept outside the database, once per content, named by SHA-256.

Materials, notice PDFs and signed-document scans live here. A file is never executed
and never served inline: the API hands it out as an attachment to those allowed. The
type of an upload is read from its bytes (magic numbers), never from its name, so a
script renamed to ``.pdf`` is refused.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

from sqlalchemy.orm import Session

from engine.errors import Invalid
from engine.models import StoredFile
from engine.settings import VAR

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

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
    """TZXM_MAX_UPLOAD_BYTES, 50 MB when unset."""
    return int(os.environ.get("TZXM_MAX_UPLOAD_BYTES", DEFAULT_MAX_BYTES))


def store_root() -> Path:
    """TZXM_FILES_DIR, var/files when unset: configuration, not process state."""
    return Path(os.environ.get("TZXM_FILES_DIR") or VAR / "files")


def _zip_kind(data: bytes) -> str | None:
    """OOXML (DOCX/XLSX) and OFD are zip containers: tell them apart by their parts."""
    try:
        names = set(zipfile.ZipFile(BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError):
        return None
    if "OFD.xml" in names:
        return "application/ofd"
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        if any(n.startswith("xl/") for n in names):
            return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return None


def _ole_kind(data: bytes) -> str | None:
    """Legacy Word and Excel are OLE2 compound files; their stream names tell which."""
    if b"W\x00o\x00r\x00d\x00D\x00o\x00c\x00u\x00m\x00e\x00n\x00t" in data:
        return "application/msword"
    if b"W\x00o\x00r\x00k\x00b\x00o\x00o\x00k" in data or b"B\x00o\x00o\x00k" in data:
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


@dataclass(frozen=True)
class FileStore:
    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, session: Session, data: bytes, media_type: str, *, now: datetime) -> StoredFile:
        """Store the bytes once (same content, same file) and return their row.

        The file is written before the row, atomically by rename, so a row never points
        at a half-written file; a rolled-back request leaves at most an unreferenced
        file, never a dangling row.
        """
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        row = session.get(StoredFile, digest)
        if row is None:
            row = StoredFile(sha256=digest, size=len(data), media_type=media_type, created_at=now)
            session.add(row)
        return row

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


def store() -> FileStore:
    return FileStore(store_root())
