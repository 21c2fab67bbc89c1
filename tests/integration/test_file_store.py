"""The file store's prune: files no row names (a request rolled back after writing its
file, a crash mid-write) are deleted once untouched for a while; a file a request in
flight is storing is never taken from it. On SQLite and PostgreSQL."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, update

from api.cli import main
from engine import files, platform_state
from engine.db import unit_of_work
from engine.errors import Conflict
from engine.health import upgrade
from engine.models import PlatformState, StoredFile

DAY_AGO = -timedelta(days=1)


def _age(path, platform, by: timedelta = DAY_AGO) -> None:
    instant = (platform.clock.now() + by).timestamp()
    os.utime(path, (instant, instant))


def _put(platform, data: bytes, *, commit: bool) -> str:
    store = files.store()
    with platform.session_factory() as session:
        digest = store.put(session, data, "application/pdf", now=platform.clock.now())
        session.commit() if commit else session.rollback()
    return digest


def test_a_rolled_back_requests_file_is_pruned_and_a_stored_ones_kept(platform, file_store):
    store = files.store()
    kept = _put(platform, b"%PDF-1.4 kept", commit=True)
    orphan = _put(platform, b"%PDF-1.4 rolled back", commit=False)
    fresh = _put(platform, b"%PDF-1.4 in flight", commit=False)  # as though its request had not committed yet
    leftover = store.path(kept).parent / ".upload-crashed"
    leftover.write_bytes(b"half")
    for path in (store.path(kept), store.path(orphan), leftover):
        _age(path, platform)

    with unit_of_work(platform.session_factory) as s:
        pruned = store.prune(s, older_than=platform.clock.now() - timedelta(hours=12))
    assert sorted(pruned) == sorted([orphan, ".upload-crashed"])
    assert store.path(kept).exists() and store.path(fresh).exists()
    assert not store.path(orphan).exists() and not leftover.exists()
    assert store.read(kept) == b"%PDF-1.4 kept"


def test_storing_bytes_whose_file_is_old_touches_it_and_after_a_prune_writes_it_anew(platform, file_store):
    """A request storing bytes an old orphan file already holds refreshes that file: the
    prune leaves it to the row coming; once pruned, the same bytes are written again."""
    store = files.store()
    _put(platform, b"%PDF-1.4 kept", commit=True)  # the store is this database's
    digest = _put(platform, b"%PDF-1.4 again", commit=False)
    _age(store.path(digest), platform)
    _put(platform, b"%PDF-1.4 again", commit=False)  # a request in flight stores the same bytes
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12)) == []
    _age(store.path(digest), platform)
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12)) == [digest]
    assert _put(platform, b"%PDF-1.4 again", commit=True) == digest
    assert store.read(digest) == b"%PDF-1.4 again"


def test_the_prune_command_deletes_what_no_row_names(platform, file_store, database_url, monkeypatch, tmp_path):
    store = files.store()
    kept = _put(platform, b"%PDF-1.4 kept", commit=True)
    orphan = _put(platform, b"%PDF-1.4 orphan", commit=False)
    for name in (kept, orphan):
        _age(store.path(name), platform, by=-timedelta(days=400))  # the command reads the real clock
    # another platform's database (a forgotten DATABASE_URL): every file would look unreferenced, and the
    # store, bound by its first file to the database it was written for, says whose it is
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    assert CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": other}).exit_code == 0
    refused = CliRunner().invoke(main, ["files", "prune", "--older-than-hours", "2"], env={"DATABASE_URL": other})
    assert refused.exit_code == 2 and "bound to another platform's database" in refused.output, refused.output
    assert store.path(kept).exists() and store.path(orphan).exists()
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["files", "prune", "--older-than-hours", "2"])
    assert result.exit_code == 0, result.output
    assert "1 unreferenced files deleted" in result.output and orphan in result.output
    assert not store.path(orphan).exists()
    refused = CliRunner().invoke(main, ["files", "prune", "--older-than-hours", "0"])
    assert refused.exit_code == 2 and "older-than-hours" in refused.output


def test_a_prune_walking_the_store_while_a_write_finishes_goes_on(platform, file_store, monkeypatch):
    """A request's temporary file is renamed to its name between the prune's listing and
    its look at the file: the prune passes over it and prunes the rest."""
    import pathlib

    store = files.store()
    _put(platform, b"%PDF-1.4 kept", commit=True)
    orphan = _put(platform, b"%PDF-1.4 orphan", commit=False)
    _age(store.path(orphan), platform)
    writing = store.path(orphan).parent / ".upload-inflight"
    writing.write_bytes(b"%PDF-1.4 in flight")
    listing = pathlib.Path.glob

    def racing(self, pattern):
        for path in listing(self, pattern):
            if path.name == ".upload-inflight":
                os.replace(path, path.with_name("f" * 64))  # the write finishes
            yield path

    monkeypatch.setattr(pathlib.Path, "glob", racing)
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12)) == [orphan]


def test_a_file_a_stopped_prune_left_aside_goes_back_when_a_row_names_it(platform, file_store):
    """A prune stopped between setting a file aside and putting it back (a request had
    touched it, and its row committed since) leaves `.prune-<sha>`: the next prune puts it
    back under its name; one no row names is deleted."""
    store = files.store()
    named = _put(platform, b"%PDF-1.4 named", commit=True)
    unnamed = _put(platform, b"%PDF-1.4 unnamed", commit=False)
    for digest in (named, unnamed):
        aside = store.path(digest).with_name(f".prune-{digest}")
        os.replace(store.path(digest), aside)
        _age(aside, platform)
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12)) == [f".prune-{unnamed}"]
    assert store.read(named) == b"%PDF-1.4 named"
    assert not list(store.path(unnamed).parent.glob(f"*{unnamed}"))


def test_a_new_file_is_on_disk_bytes_then_name_before_its_row_is_written(platform, file_store, monkeypatch):
    """The database keeps a committed row through a power cut; the file it names must be as
    durable: its bytes synced before the rename, the directory (its name) synced after, and
    the first file of a new subdirectory makes that subdirectory's name durable too."""
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("sync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "sync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    _put(platform, b"%PDF-1.4 first", commit=True)  # the store's first file binds it (PLATFORM, made durable too)
    assert (file_store / files.BINDING).exists()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    digest = _put(platform, b"%PDF-1.4 durable", commit=True)
    assert events == ["sync directory", "sync file", "rename", "sync directory"]  # the new ab/ directory, then the file
    events.clear()
    _put(platform, b"%PDF-1.4 durable", commit=True)  # the same bytes again: the file is only touched
    assert events == []
    assert files.store().read(digest) == b"%PDF-1.4 durable"


def test_a_store_with_only_unreferenced_files_is_pruned_only_when_forced(platform, file_store):
    """A store not bound to a platform (written before bindings) whose files no row of the
    database names cannot be told from another's: the operator says so (``--force``), as on
    a new platform whose only uploads rolled back."""
    store = files.store()
    orphan = _put(platform, b"%PDF-1.4 orphan", commit=False)
    (file_store / files.BINDING).unlink()
    _age(store.path(orphan), platform)
    with unit_of_work(platform.session_factory) as s, pytest.raises(Conflict, match="names none of the files"):
        store.prune(s, older_than=platform.clock.now() - timedelta(hours=12))
    assert store.path(orphan).exists()
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12), force=True) == [orphan]


def test_a_store_whose_newest_files_are_gone_still_belongs_to_its_database(platform, file_store):
    """A store restored from a backup older than the database lacks its newest files: the
    database still names files that are there, so the prune goes on."""
    store = files.store()
    kept = [_put(platform, f"%PDF-1.4 kept {i}".encode(), commit=True) for i in range(25)]
    orphan = _put(platform, b"%PDF-1.4 orphan", commit=False)
    for name in kept[5:]:
        store.path(name).unlink()  # the 20 newest
    _age(store.path(orphan), platform)
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=platform.clock.now() - timedelta(hours=12)) == [orphan]
    assert all(store.path(name).exists() for name in kept[:5])



def test_the_store_is_bound_to_its_platform_and_refuses_a_prune_for_another(platform, file_store, database_url):
    """The first prune binds the store to the database's platform identity; a prune run
    with another platform's database (which may name some of the same files, e.g. the same
    notice) deletes nothing, unless the operator says so (``--force``, which binds anew)."""
    store = files.store()
    kept = _put(platform, b"%PDF-1.4 kept", commit=True)
    orphan = _put(platform, b"%PDF-1.4 orphan", commit=False)
    _age(store.path(orphan), platform)
    cutoff = platform.clock.now() - timedelta(hours=12)
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=cutoff) == [orphan]
        ours = platform_state.platform_id(s)
    assert (file_store / files.BINDING).read_text(encoding="ascii").strip() == ours
    orphan = _put(platform, b"%PDF-1.4 orphan again", commit=False)
    _age(store.path(orphan), platform)
    with unit_of_work(platform.session_factory) as s:  # the same files named, another platform's identity
        s.execute(update(PlatformState).where(PlatformState.key == platform_state.PLATFORM_ID).values(value="f" * 32))
    with unit_of_work(platform.session_factory) as s, pytest.raises(Conflict, match="bound to another platform"):
        store.prune(s, older_than=cutoff)
    assert store.path(orphan).exists() and store.path(kept).exists()
    with unit_of_work(platform.session_factory) as s:
        assert store.prune(s, older_than=cutoff, force=True) == [orphan]
    assert (file_store / files.BINDING).read_text(encoding="ascii").strip() == "f" * 32

    with unit_of_work(platform.session_factory) as s:  # a database upgraded before identities: upgrade it first
        s.execute(delete(PlatformState).where(PlatformState.key == platform_state.PLATFORM_ID))
    with unit_of_work(platform.session_factory) as s, pytest.raises(Conflict, match="tzxm db upgrade"):
        store.prune(s, older_than=cutoff)
    upgrade(database_url)
    with platform.session_factory() as s:
        assert platform_state.platform_id(s) not in (None, "f" * 32)


def test_the_first_file_binds_the_store_and_a_prune_binds_only_a_store_its_database_names(platform, file_store):
    """The store's first file binds it to the database it is written for; a store not yet
    bound (written before bindings) is bound by a prune only when that database names some
    of its files, even when no file is old enough to prune (the review's case: a prune with
    another platform's database bound the store to it, and locked out its own)."""
    store = files.store()
    kept = _put(platform, b"%PDF-1.4 kept", commit=True)
    with platform.session_factory() as s:
        assert (file_store / files.BINDING).read_text(encoding="ascii").strip() == platform_state.platform_id(s)
    (file_store / files.BINDING).unlink()
    with unit_of_work(platform.session_factory) as s:  # another platform's database: it names none of these files
        s.execute(delete(StoredFile).where(StoredFile.sha256 == kept))
    with unit_of_work(platform.session_factory) as s, pytest.raises(Conflict, match="names none of the files"):
        store.prune(s, older_than=platform.clock.now() - timedelta(hours=12))
    assert not (file_store / files.BINDING).exists() and store.path(kept).exists()
