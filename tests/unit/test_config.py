"""The generated SECRET_KEY: one key for every process of a host, never an empty one."""
from __future__ import annotations

import threading

import pytest

from api import config


@pytest.fixture
def var(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(config, "VAR", tmp_path)
    return tmp_path


def test_processes_starting_together_get_one_whole_key(var):
    barrier = threading.Barrier(16)
    keys = []

    def start():
        barrier.wait()
        keys.append(config.secret_key())

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16 and len(set(keys)) == 1 and len(keys[0]) >= 48
    assert sorted(p.name for p in var.iterdir()) == ["secret_key"]  # no temporary file left behind
    assert (var / "secret_key").stat().st_mode & 0o777 == 0o600


def test_an_empty_key_file_is_refused_not_used(var):
    (var / "secret_key").write_text("")
    with pytest.raises(RuntimeError, match="empty"):
        config.secret_key()


def test_the_environment_wins(var, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment-" + "k" * 20)
    assert config.secret_key() == "from-the-environment-" + "k" * 20
    assert not (var / "secret_key").exists()
