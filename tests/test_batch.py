"""Batch mode: trees of files in worker processes and on a Dask cluster, identical to a serial run,
resumable, with a manifest; a worker killed mid-job loses nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import gencodec
from gencodec import batch
from gencodec_cli.main import cli

TEXT = b"batch mode codes many files at once; each job writes its own output. " * 60


@pytest.fixture
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / ".hidden").mkdir()
    for i, rel in enumerate(["one.txt", "a/two.txt", "a/b/three.bin", ".hidden/skip.txt"]):
        (src / rel).write_bytes(TEXT[: 1000 + 700 * i] + bytes([i]) * 50)
    return src


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_mirrors_the_tree_and_skips_hidden(tree, tmp_path):
    jobs = batch.plan([tree], tmp_path / "out", "compress")
    assert [Path(j.target).relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "a/b/three.bin.gcx", "a/two.txt.gcx", "one.txt.gcx"]


def test_workers_give_the_bytes_of_a_serial_run_and_resume(tree, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    r = CliRunner().invoke(cli, ["compress", "--codec", "xz", "-r", str(tree), "-o", str(serial)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["compress", "--codec", "xz", "-r", str(tree), "-o", str(parallel), "--workers", "2",
                                 "--manifest", str(tmp_path / "m.csv")])
    assert r.exit_code == 0 and "3 of 3 files compressed" in r.stderr, r.output
    assert _files(serial) == _files(parallel) and len(_files(serial)) == 3
    assert (tmp_path / "m.csv").read_text().count(",done,") == 3
    r = CliRunner().invoke(cli, ["compress", "--codec", "xz", "-r", str(tree), "-o", str(parallel), "--workers", "2"])
    assert r.exit_code == 0 and "3 skipped (up to date)" in r.stderr
    (parallel / "one.txt.gcx").write_bytes(b"damaged")
    r = CliRunner().invoke(cli, ["compress", "--codec", "xz", "-r", str(tree), "-o", str(parallel)])
    assert r.exit_code == 1 and "not this input's frame" in r.stderr and "2 skipped" in r.stderr
    r = CliRunner().invoke(cli, ["decompress", "-r", str(serial), "-o", str(tmp_path / "back"), "--workers", "2",
                                 "--manifest", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    assert _files(tmp_path / "back") == {k: v for k, v in _files(tree).items() if not k.startswith(".")}
    assert {row["status"] for row in json.loads((tmp_path / "d.json").read_text())} == {"done"}
    r = CliRunner().invoke(cli, ["decompress", "-t", "-r", str(serial), "--workers", "2"])
    assert r.exit_code == 0 and "3 of 3 files tested" in r.stderr


def test_a_failing_file_does_not_stop_the_others(tree, tmp_path):
    (tree / "bad.gcx").write_bytes(b"not a frame")
    rows = batch.run(batch.plan([tree], tmp_path / "out", "decompress"), "decompress")
    assert [r["status"] for r in rows] == ["failed"] and "not a .gcx file" in rows[0]["error"]
    assert not (tmp_path / "out" / "bad").exists()


distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as c, Client(c) as client:
        yield c, client


def test_dask_cluster_writes_what_a_serial_run_writes(tree, tmp_path, cluster):
    c, client = cluster
    serial = batch.run(batch.plan([tree], tmp_path / "serial", "compress"), "compress", "bytemodel")
    rows = batch.run(batch.plan([tree], tmp_path / "dask", "compress"), "compress", "bytemodel", client=client)
    assert [r["status"] for r in rows] == ["done"] * 3 and [r["status"] for r in serial] == ["done"] * 3
    assert _files(tmp_path / "serial") == _files(tmp_path / "dask")
    r = CliRunner().invoke(cli, ["decompress", "-r", str(tmp_path / "dask"), "-o", str(tmp_path / "back"),
                                 "--cluster", "--scheduler", c.scheduler_address])
    assert r.exit_code == 0, r.output
    assert _files(tmp_path / "back") == {k: v for k, v in _files(tree).items() if not k.startswith(".")}


def test_a_worker_killed_mid_job_loses_nothing(tmp_path, cluster):
    c, client = cluster
    src = tmp_path / "big"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}.txt").write_bytes((TEXT * 30)[: 60_000 + i])  # a few seconds each with bytemodel
    jobs = batch.plan([src], tmp_path / "out", "compress")
    pids = list(client.run(os.getpid).values())
    futures = client.map(batch.run_job, jobs, ["compress"] * 4, ["bytemodel"] * 4, pure=False, retries=2)
    time.sleep(1.5)
    os.kill(pids[0], signal.SIGKILL)  # mid-job: its task goes to the other worker
    rows = client.gather(futures)
    # a task whose worker died after writing runs again and finds its output done: "skipped"
    assert all(r["status"] in ("done", "skipped") for r in rows), rows
    for j in jobs:
        assert gencodec.decompress(Path(j.target).read_bytes()) == Path(j.source).read_bytes()
    from gencodec import fileio

    fileio.remove_stale_temporaries(str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == [f"f{i}.txt.gcx" for i in range(4)]


def test_bench_on_a_dask_cluster_gives_the_serial_numbers(tree, cluster):
    from gencodec.bench import runner

    c, client = cluster
    files = [tree / "one.txt", tree / "a" / "two.txt"]
    here = runner.run_bench(files, ["xz", "zstd"], workers=0, progress=False)
    there = runner.run_bench(files, ["xz", "zstd"], progress=False, client=client)
    key = lambda d: [(r["file"], r["codec"], r["n_bytes_out"], r["status"]) for r in d["rows"]]  # noqa: E731
    assert key(here) == key(there) and all(r["status"] == "ok" for r in there["rows"])
    assert there["settings"]["cluster"] == c.scheduler_address
    r = CliRunner().invoke(cli, ["bench", "--codec", "xz", "--scheduler", c.scheduler_address, "-q",
                                 "--json", "-", str(files[0])])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"][0]["codec"] == "xz"
