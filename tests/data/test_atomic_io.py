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
