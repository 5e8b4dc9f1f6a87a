"""Unpublished folders name their writer (curation/store/owner.py); what a killed writer left is removed by the
next writer or `collect_garbage`, a live writer's folder never, on a local root and on object storage."""
from __future__ import annotations

import os
import socket
import time
import uuid

import fsspec
import pytest

from curation.store.owner import STALE_S, Heartbeat, Owner, abandoned, owners_of
from curation.store.versions import STAGING_PREFIX, Store
from tests.curation.killed import as_killed, dead_pid


def test_owner_is_gone_when_its_process_is_or_its_heartbeat_stopped_elsewhere():
    now = time.time()
    me = Owner.me("t")
    assert not me.gone(now)
    assert not Owner(**{**me.__dict__, "heartbeat_at": now - 10 * STALE_S}).gone(now)  # alive here: never by age
    assert Owner(**{**me.__dict__, "pid": dead_pid(), "pid_started": None}).gone(now)
    assert Owner(**{**me.__dict__, "pid_started": (me.pid_started or 0) + 1}).gone(now)  # the pid was reused
    elsewhere = Owner("t", socket.gethostname() + "-other", 1, None, now - 30)
    assert not elsewhere.gone(now)
    assert Owner(**{**elsewhere.__dict__, "heartbeat_at": now - STALE_S - 1}).gone(now)
    assert Owner.from_bytes(b"{not json") is None and Owner.from_bytes(me.to_bytes()) == me


def test_heartbeat_rewrites_the_owner_file_until_stopped(tmp_path):
    hb = Heartbeat(tmp_path, "tok", interval_s=0.05)
    first = owners_of(tmp_path)[0].heartbeat_at
    time.sleep(0.3)
    assert owners_of(tmp_path)[0].heartbeat_at > first and owners_of(tmp_path)[0].pid == os.getpid()
    hb.stop()
    assert owners_of(tmp_path) == []


def test_next_writer_removes_a_killed_writers_staging_but_not_a_live_ones(tmp_path, hand_built_tables):
    store = Store(tmp_path / "mini")
    killed, live = store.begin(), store.begin()
    killed.write_table("rl", hand_built_tables["rl"])
    (killed.path / "_work").mkdir()
    as_killed(killed)
    assert store.collect_garbage(dry_run=True).removed == [str(killed.path)] and killed.path.exists()
    info = store.write_version(hand_built_tables, config={})  # its begin() collects
    assert not killed.path.exists() and live.path.is_dir()
    assert [p.name for p in info.path.iterdir() if p.name.startswith("_")] == []  # no owner file published
    report = store.collect_garbage()
    assert report.removed == [] and report.kept == [str(live.path)]
    live.abort()
    assert [p for p in store.root.iterdir() if p.name.startswith(STAGING_PREFIX)] == []


def test_a_folder_without_owner_file_goes_by_its_age(tmp_path):
    old, new = tmp_path / f"{STAGING_PREFIX}old", tmp_path / f"{STAGING_PREFIX}new"
    for d in (old, new):
        (d / "rl").mkdir(parents=True)
    then = time.time() - STALE_S - 5
    for p in (old, old / "rl"):
        os.utime(p, (then, then))
    assert abandoned(old) and not abandoned(new)


@pytest.fixture
def remote(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_CACHE", str(tmp_path / "cache"))
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/data/mini"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    fs.rm(path.split("/data")[0], recursive=True)


def test_object_storage_claims_of_killed_or_silent_writers_are_collected(remote, hand_built_tables, tmp_path):
    store = Store(remote)
    killed, live, silent = store.begin(), store.begin(), store.begin()
    spool = store.begin(spool=True)  # a local runner writing to object storage spools locally first
    killed.write_table("rl", hand_built_tables["rl"])
    as_killed(killed)
    # a writer on another machine that stopped beating STALE_S ago
    silent.heartbeat.stop(remove=True)
    (silent.path / "_OWNER.x.json").write_bytes(
        Owner("x", "another-host", 7, None, time.time() - STALE_S - 1).to_bytes())
    as_killed(spool)
    report = store.collect_garbage()
    assert sorted(report.removed) == sorted([str(killed.path), str(silent.path), str(spool.path)])
    assert report.kept == [str(live.path)]
    assert not killed.path.exists() and live.path.exists() and not spool.path.exists()
    with live:
        live.write_table("rl", hand_built_tables["rl"])
        info = live.commit(parent=None, config={})
    assert store.versions() == [info.version]
    assert [p.name for p in info.path.iterdir() if p.name.startswith("_")] == []
