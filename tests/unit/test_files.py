"""The file store's type sniffing (engine/files.py): a file's type is read from its bytes,
never from its name, so each accepted kind is built here as real (tiny) content and
each refusal is content that only pretends."""
from __future__ import annotations

import hashlib
import struct
import zipfile
from io import BytesIO

import pytest

from engine import files
from engine.errors import Invalid

PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0) + b"\0" * 4
JPEG = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\xff\xd9"


def zipped(parts: dict[str, str]) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return buffer.getvalue()


CONTENT_TYPES = '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
DOCX = zipped({"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": "<Relationships/>",
               "word/document.xml": "<w:document/>"})
XLSX = zipped({"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": "<Relationships/>",
               "xl/workbook.xml": "<workbook/>", "xl/worksheets/sheet1.xml": "<worksheet/>"})
OFD = zipped({"OFD.xml": '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0"/>',
              "Doc_0/Document.xml": "<ofd:Document/>"})


def ole2(*streams: str, sector: int = 512) -> bytes:
    """A compound file: the 512-byte header, then a directory sector with the root entry
    and one entry per stream name (name UTF-16LE, its byte length with the NUL, type 2)."""
    header = files.OLE2 + b"\0" * 16 + struct.pack("<HHH", 0x3E, 3, 0xFFFE) + struct.pack("<H", 9)
    header = header.ljust(512, b"\0")

    def entry(name: str, kind: int) -> bytes:
        encoded = name.encode("utf-16-le") + b"\0\0"
        return (encoded.ljust(64, b"\0") + struct.pack("<HB", len(encoded), kind)).ljust(128, b"\0")

    directory = entry("Root Entry", 5) + b"".join(entry(name, 2) for name in streams)
    return header + directory.ljust(sector, b"\0")


@pytest.mark.parametrize(("data", "media_type"), [
    (PDF, "application/pdf"),
    (PNG, "image/png"),
    (JPEG, "image/jpeg"),
    (DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (XLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (OFD, "application/ofd"),
    (ole2("WordDocument", "1Table"), "application/msword"),
    (ole2("Workbook"), "application/vnd.ms-excel"),
    (ole2("Book"), "application/vnd.ms-excel"),
])
def test_each_accepted_kind_is_recognised_by_its_bytes(data, media_type):
    assert files.sniff(data) == media_type
    assert files.accepted_type(data) == media_type
    assert media_type in files.ACCEPTED_TYPES


@pytest.mark.parametrize("data", [
    pytest.param(b"#!/bin/sh\nrm -rf /\n", id="a shell script (named .pdf by its sender)"),
    pytest.param(b"MZ\x90\x00\x03\x00\x00\x00" + b"\0" * 56, id="a Windows executable"),
    pytest.param(b"<!DOCTYPE html><html><script>alert(1)</script></html>", id="an HTML page"),
    pytest.param(b"", id="an empty file"),
    pytest.param(b"PK\x03\x04 not really a zip", id="a broken zip"),
    pytest.param(zipped({"hello.txt": "hi"}), id="a plain zip"),
    pytest.param(zipped({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": "<w:document/>",
                         "word/vbaProject.bin": "macro"}), id="a macro-enabled Word document (DOCM)"),
    pytest.param(zipped({"[Content_Types].xml": CONTENT_TYPES, "ppt/presentation.xml": "<p/>"}), id="a PowerPoint"),
    pytest.param(ole2("Property", "_Validation"), id="an OLE2 file that is no Word or Excel (an installer)"),
    pytest.param(files.OLE2 + "WordDocument".encode("utf-16-le"), id="a stream name outside any directory entry"),
    pytest.param(b"  %PDF-1.4", id="a PDF header not at the start"),
])
def test_anything_else_is_refused_whatever_its_name(data):
    assert files.sniff(data) is None
    with pytest.raises(Invalid) as refused:
        files.accepted_type(data)
    assert "file" in refused.value.errors
    assert "PDF、OFD、JPEG、PNG、DOC、XLS、DOCX、XLSX" in refused.value.errors["file"][0]


def test_the_refusal_names_the_field_it_was_given():
    with pytest.raises(Invalid) as refused:
        files.accepted_type(b"plain text", field="scan")
    assert list(refused.value.errors) == ["scan"]


def test_the_size_limit_is_configuration(monkeypatch):
    monkeypatch.delenv("TZXM_MAX_UPLOAD_BYTES", raising=False)
    assert files.max_upload_bytes() == 50 * 1024 * 1024
    monkeypatch.setenv("TZXM_MAX_UPLOAD_BYTES", "1024")
    assert files.max_upload_bytes() == 1024
    for wrong in ("-5", "0", "ten"):
        monkeypatch.setenv("TZXM_MAX_UPLOAD_BYTES", wrong)
        with pytest.raises(ValueError, match="TZXM_MAX_UPLOAD_BYTES"):
            files.max_upload_bytes()


def test_the_store_is_addressed_by_content_and_reads_back_only_unaltered_bytes(tmp_path):
    store = files.FileStore(tmp_path)
    digest = hashlib.sha256(PDF).hexdigest()
    path = store.path(digest)
    assert path == tmp_path / digest[:2] / digest
    path.parent.mkdir(parents=True)
    path.write_bytes(PDF)
    assert store.read(digest) == PDF
    path.write_bytes(PDF + b"tampered")
    with pytest.raises(FileNotFoundError):
        store.read(digest)
    path.unlink()
    with pytest.raises(FileNotFoundError):
        store.read(digest)
