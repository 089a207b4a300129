#!/usr/bin/env python
"""Speed of the sparse 3D U-Net (``reconstruction.sparse.SparseCostRegNet``) at the official size.

    python scripts/bench_sparse_conv.py [--fixture ../shared/fixtures/one2345_parity/recon/recon_polar090.npz]
        [--repeats 3] [--backends auto,dense,gather] [--output outputs/bench/sparse_conv.json]

Input: the active voxels of the official run (``occupancy_packbits`` of the parity fixture, ~779k of 96^3) with
random 32-channel features and random weights (timing does not depend on the values). Each timed U-Net call
starts from a fresh ``SparseTensor``, so it includes building the site sets and neighbour maps, as inference
does once per shape. BatchNorm runs in training mode (batch statistics), as the official inference.
Baseline: the same U-Net layout built from dense ``nn.Conv3d`` / ``nn.ConvTranspose3d`` / ``BatchNorm3d`` on the
full 96^3 grid, and one dense Conv3d 32->16 vs the first sparse conv, measured in the same run.
Prints a table and saves JSON (median of --repeats, plus every run, thread count and the machine's load).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.io import write_text_atomic  # noqa: E402
from reconstruction.sparse import SparseConv3d, SparseCostRegNet, SparseTensor  # noqa: E402

DEFAULT_FIXTURE = REPO.parent / "shared" / "fixtures" / "one2345_parity" / "recon" / "recon_polar090.npz"


def active_voxels(fixture: Path) -> torch.Tensor:
    """(N, 4) int32 [x, y, z, 0] sites from the fixture's 96^3 occupancy (C order over x, y, z)."""
    if not fixture.is_file():
        raise SystemExit(f"fixture not found: {fixture} (pass --fixture path/to/recon_polar090.npz)")
    packed = np.load(fixture)["occupancy_packbits"]
    occupancy = np.unpackbits(packed)[: 96**3].reshape(96, 96, 96).astype(bool)
    xyz = torch.from_numpy(np.argwhere(occupancy))
    return torch.cat([xyz, torch.zeros(xyz.shape[0], 1, dtype=xyz.dtype)], dim=1).int()


class DenseUNet(nn.Module):
    """The SparseCostRegNet layout with dense layers (k3, padding 1; transposed convs with output_padding 1)."""

    def __init__(self, d_in: int = 32, d_out: int = 16) -> None:
        super().__init__()

        def block(cin, cout, stride=1, transposed=False):
            conv = (
                nn.ConvTranspose3d(cin, cout, 3, stride, padding=1, output_padding=1, bias=False)
                if transposed
                else nn.Conv3d(cin, cout, 3, stride, padding=1, bias=False)
            )
            return nn.Sequential(conv, nn.BatchNorm3d(cout), nn.ReLU())

        self.conv0, self.conv1, self.conv2 = block(d_in, d_out), block(d_out, 16, 2), block(16, 16)
        self.conv3, self.conv4 = block(16, 32, 2), block(32, 32)
        self.conv5, self.conv6 = block(32, 64, 2), block(64, 64)
        self.conv7, self.conv9 = block(64, 32, 2, True), block(32, 16, 2, True)
        self.conv11 = block(16, d_out, 2, True)

    def forward(self, x):
        c0 = self.conv0(x)
        c2 = self.conv2(self.conv1(c0))
        c4 = self.conv4(self.conv3(c2))
        y = self.conv6(self.conv5(c4))
        y = c4 + self.conv7(y)
        y = c2 + self.conv9(y)
        return c0 + self.conv11(y)


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="auto,dense,gather", help="comma list of auto, dense, gather")
    parser.add_argument("--backward", action="store_true", help="also time forward + backward (auto back end)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=REPO / "outputs" / "bench" / "sparse_conv.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    coords = active_voxels(args.fixture).to(device)
    feats = torch.randn(coords.shape[0], 32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows: list[dict] = []

    def record(name: str, times: list[float], note: str = "") -> None:
        rows.append({"case": name, "median_s": statistics.median(times), "runs_s": times, "note": note})
        print(f"  {name:<44} {statistics.median(times):8.3f} s   {note}", flush=True)

    print(f"{coords.shape[0]} active voxels of 96^3, 32 channels, device {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    net = SparseCostRegNet(32, 16).to(device).train()
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        net.set_backend(backend)

        def run_sparse():
            with torch.no_grad():
                net(SparseTensor(coords, feats, check_unique=False))
            sync()

        reps = args.repeats if backend != "gather" else max(1, min(args.repeats, 2))
        record(f"sparse U-Net forward [{backend}]", timed(run_sparse, reps), "incl. site sets + maps")

    if args.backward:
        net.set_backend("auto")

        def run_backward():
            x = SparseTensor(coords, feats.clone().requires_grad_(True), check_unique=False)
            net(x).feats.square().mean().backward()
            sync()

        record("sparse U-Net forward+backward [auto]", timed(run_backward, args.repeats))

    dense_net = DenseUNet(32, 16).to(device).train()
    dense_in = torch.zeros(1, 32, 96, 96, 96, device=device)
    dense_in[0, :, coords[:, 0].long(), coords[:, 1].long(), coords[:, 2].long()] = feats.t()

    def run_dense():
        with torch.no_grad():
            dense_net(dense_in)
        sync()

    record("dense U-Net forward (96^3, nn.Conv3d)", timed(run_dense, args.repeats), "baseline")

    conv = SparseConv3d(32, 16).to(device)
    for backend in ("dense", "gather"):
        conv.backend = backend
        x = SparseTensor(coords, feats, check_unique=False)
        with torch.no_grad():
            conv(x)  # builds the level's map once; the timed calls reuse it

        def run_conv0(x=x):
            with torch.no_grad():
                conv(x)
            sync()

        record(f"sparse conv 32->16 (maps cached) [{backend}]", timed(run_conv0, args.repeats))
    dense_conv = nn.Conv3d(32, 16, 3, padding=1, bias=False).to(device)

    def run_dense_conv():
        with torch.no_grad():
            dense_conv(dense_in)
        sync()

    record("dense nn.Conv3d 32->16 on 96^3", timed(run_dense_conv, args.repeats), "baseline")

    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS of the process: {peak_rss_gb:.2f} GB; load average at the end {os.getloadavg()[0]:.1f}")
    result = {
        "active_voxels": int(coords.shape[0]),
        "channels_in": 32,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "load_average_end": os.getloadavg(),
        "peak_rss_gb": peak_rss_gb,
        "torch": torch.__version__,
        "rows": rows,
    }
    write_text_atomic(args.output, json.dumps(result, indent=2))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
