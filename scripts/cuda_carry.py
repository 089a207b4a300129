"""Prepare what scripts/cuda_check.py needs on a GPU machine without network: ``.cuda_carry/`` (git-ignored).

    python scripts/cuda_carry.py [--dest .cuda_carry] [--shared ../shared]      # or: make cuda-carry

* ``wheels/``: every package of ``requirements-cuda-carry.txt`` as a CPython 3.12 manylinux x86-64 wheel
  (``pip download --no-deps --only-binary=:all:``); a package with no such wheel on the index (an sdist-only pure
  Python one, e.g. PyOpenGL 3.1.0) is built here into a ``py3-none-any`` wheel with ``pip wheel --no-deps``.
* ``shared/``: the parts of the reference folder the GPU tests read (the One-2-3-45 parity fixtures and the
  reconstruction state-dict manifest), without the files only benchmarks read.

Then carry it: the device tool's ``carry: [".cuda_carry"]`` (64 MiB limit for the whole working tree; this
prints the size). Existing wheels are kept (rerunning is cheap).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
#: Paths under the reference folder that the GPU run reads (tests and timings); others stay behind.
SHARED_PARTS = ["fixtures/one2345_parity/README.md", "fixtures/one2345_parity/cameras",
                "fixtures/one2345_parity/elevation", "fixtures/one2345_parity/zero123",
                "fixtures/one2345_parity/recon/model_state.pth", "fixtures/one2345_parity/recon/recon_polar060.npz",
                "fixtures/one2345_parity/recon/recon_polar090.npz", "docs/one2345-recon-state-dict.tsv"]


def requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def wheels_of(name: str, dest: Path) -> list[Path]:
    """Wheels in ``dest`` of the distribution ``name`` (wheel names write '-' and '.' of a name as '_')."""
    return [w for w in dest.glob("*.whl") if _norm(w.name.split("-")[0]) == _norm(name)]


def fetch_wheel(spec: str, dest: Path) -> str:
    name = spec.split("==")[0]
    if wheels_of(name, dest):
        return "kept"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(dest), spec]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
        return "downloaded"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), spec],
                           capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"cannot get a wheel for {spec}:\n{build.stderr[-2000:]}")
    built = wheels_of(name, dest)
    if not built or not all(w.name.endswith("-none-any.whl") for w in built):
        raise SystemExit(f"{spec}: pip wheel built {[w.name for w in built]}, not a pure-Python wheel")
    return "built (pure Python)"


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=REPO / ".cuda_carry")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--requirements", type=Path, default=REPO / "requirements-cuda-carry.txt")
    p.add_argument("--no-wheels", action="store_true")
    p.add_argument("--no-shared", action="store_true")
    args = p.parse_args(argv)
    wheels, shared = args.dest / "wheels", args.dest / "shared"
    if not args.no_wheels:
        wheels.mkdir(parents=True, exist_ok=True)
        for spec in requirements(args.requirements):
            print(f"  {spec:<28} {fetch_wheel(spec, wheels)}", flush=True)
    if not args.no_shared:
        missing = [part for part in SHARED_PARTS if not (args.shared / part).exists()]
        if missing:
            raise SystemExit(f"not in {args.shared}: {missing} (pass --shared PATH)")
        for part in SHARED_PARTS:
            src, dst = args.shared / part, shared / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dst)
        for path in shared.rglob("*"):  # the reference folder is read-only; the copy must be replaceable
            path.chmod(0o755 if path.is_dir() else 0o644)
    total = size_mb(args.dest)
    print(f"{args.dest}: {total:.1f} MiB (wheels {size_mb(wheels):.1f}, shared {size_mb(shared):.1f}); "
          "the device tool carries at most 64 MiB with the working tree")
    return 0 if total < 60 else 1


if __name__ == "__main__":
    raise SystemExit(main())
