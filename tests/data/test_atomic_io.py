"""Outputs are written whole, with ordinary permissions (data/io.py)."""


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os
    import stat

    from data.io import atomic_directory, write_text_atomic

    mask = os.umask(0o022)
    try:
        f = write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "d") as d:
            (d / "b.txt").write_text("y")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_failed_write_leaves_no_partial_file(tmp_path):
    import pytest

    from data.io import atomic_path

    target = tmp_path / "mesh.ply"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ concurrent writers, stale leftovers
FILES = ("a.txt", "b.txt", "c.txt", "d.txt")


def _writer(dest, writer, writes, start):
    """Write ``dest`` ``writes`` times; every file holds "writer-iteration". Returns the errors seen."""
    from data.io import atomic_directory

    start.wait()
    errors = []
    for i in range(writes):
        try:
            with atomic_directory(dest) as tmp:
                for name in FILES:
                    (tmp / name).write_text(f"{writer}-{i}")
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


def test_concurrent_writers_of_one_folder_never_fail_and_one_writer_wins_whole(tmp_path):
    import multiprocessing as mp

    dest = tmp_path / "out" / "obj"
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            jobs = [pool.apply_async(_writer, (dest, w, 50, start)) for w in range(4)]
            start.set()
            errors = [e for j in jobs for e in j.get(timeout=120)]
    assert errors == []
    contents = {p.name: p.read_text() for p in dest.iterdir()}
    assert set(contents) == set(FILES)
    assert len(set(contents.values())) == 1, contents  # all files from the same write of the same writer
    assert sorted(p.name for p in dest.parent.iterdir()) == ["obj"]  # no temporary or trash folder left


def test_leftovers_of_a_killed_writer_are_cleaned_by_the_next_write(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from data.io import atomic_directory

    dest = tmp_path / "obj"
    code = ("import sys, time\nfrom data.io import atomic_directory\n"
            "with atomic_directory(sys.argv[1]) as tmp:\n"
            "    (tmp / 'half.txt').write_text('x'); print('writing', flush=True); time.sleep(60)\n")
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE, text=True,
                            cwd=root, env={**os.environ, "PYTHONPATH": root})
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = [p for p in tmp_path.iterdir() if p.name.startswith(".obj.")]
    assert len(killed) == 1 and (killed[0] / "half.txt").exists()
    # a live concurrent writer's temporary folder must survive
    with atomic_directory(dest) as live:
        (live / "x.txt").write_text("live")
        other = tmp_path / ".other.tmp"  # unrelated hidden folders are never touched
        other.mkdir()
        with atomic_directory(dest) as tmp:
            (tmp / "x.txt").write_text("second")
            assert live.exists()
        assert not killed[0].exists() and live.exists() and other.exists()
    assert (dest / "x.txt").read_text() == "live"  # last writer wins
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", "obj"]


def test_old_unattributed_leftovers_are_cleaned_fresh_ones_kept(tmp_path):
    import os
    import time

    from data.io import STALE_TEMPORARY_AGE_S, atomic_directory

    old, fresh = tmp_path / ".obj.abcd_123", tmp_path / ".obj.zyxw_987"  # names of the former mkdtemp scheme
    for p in (old, fresh):
        p.mkdir()
    past = time.time() - STALE_TEMPORARY_AGE_S - 60
    os.utime(old, (past, past))
    with atomic_directory(tmp_path / "obj") as tmp:
        (tmp / "x").write_text("x")
    assert not old.exists() and fresh.exists()
