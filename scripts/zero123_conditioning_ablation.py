"""Does a Zero123 training run use its conditioning? Loss with true vs ablated inputs, per timestep bucket.

Loads ``RUN/checkpoints/last.ckpt`` (trained weights, not the EMA copy) of a ``train.py`` Zero123 run and scores
the run's validation pairs (held-out target views when ``holdout_views`` was set) and training pairs with the
same (timestep, noise) draws under: the true inputs, a zero concat latent, another pair's concat latent, a zero
cross-attention context, and another pair's pose. Prints a table per split; ``--out`` saves it as JSON.

    python scripts/zero123_conditioning_ablation.py runs/zero123_tiny [--repeats 16] [--out ablation.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.datasets.rendered import collate  # noqa: E402
from data.io import atomic_path  # noqa: E402
from zero123.training.data import Zero123DataModule  # noqa: E402
from zero123.training.init import initial_model, scale_latents_by_std  # noqa: E402
from zero123.training.lit_module import Zero123LitModule, batch_pose_code  # noqa: E402
from zero123.training.run import calibration_images, load_train_config  # noqa: E402

BUCKETS = ((0, 100), (100, 300), (300, 600), (600, 1000))
CASES = ("true", "zero_concat", "other_concat", "zero_context", "shuffled_pose")


def load_run(run: Path) -> tuple[Zero123LitModule, Zero123DataModule]:
    cfg = load_train_config(run / "train_config.yaml")
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"error: {ckpt} not found (pass the output_dir of a finished train.py Zero123 run)")
    _, model = initial_model(cfg.init, cfg.model_config)
    module = Zero123LitModule(model, cfg)
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    if cfg.init.scale_by_std:  # the scale is not in the state dict: recompute it from the loaded VAE
        scale_latents_by_std(model, calibration_images(cfg))
    data = Zero123DataModule(cfg.data, cfg.holdout_views)
    data.setup("fit")
    return module.eval(), data


@torch.no_grad()
def ablation_table(module: Zero123LitModule, items: list[dict], repeats: int) -> dict[str, dict[str, float]]:
    """{bucket: {case: mean eps-MSE}} over ``repeats`` (t, noise) draws per pair, identical across cases."""
    model, batch = module.model, collate(items)
    z, concat, embeds = module.encode_batch(batch, torch.Generator().manual_seed(0))
    code = batch_pose_code(batch)
    other = torch.roll(torch.arange(z.shape[0]), 1)
    rep = lambda x: x.repeat(repeats, *([1] * (x.ndim - 1)))  # noqa: E731
    table = {}
    for lo, hi in BUCKETS:
        gen = torch.Generator().manual_seed(lo)
        t = torch.randint(lo, hi, (z.shape[0] * repeats,), generator=gen)
        eps = torch.randn((t.shape[0], *z.shape[1:]), generator=gen)
        acp = model.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = acp.sqrt() * rep(z) + (1.0 - acp).sqrt() * eps

        def loss(cc: torch.Tensor, pose: torch.Tensor, zero_context: bool = False) -> float:
            context = model.project_context(rep(embeds), rep(pose))
            context = torch.zeros_like(context) if zero_context else context
            return float(((model.predict_noise(noisy, t, context, rep(cc)) - eps) ** 2).mean())

        table[f"t{lo}-{hi}"] = dict(zip(CASES, (
            loss(concat, code), loss(torch.zeros_like(concat), code), loss(concat[other], code),
            loss(concat, code, zero_context=True), loss(concat, code[other]))))
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="output_dir of a train.py Zero123 run")
    p.add_argument("--repeats", type=int, default=16, help="(timestep, noise) draws per pair and bucket")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the tables")
    args = p.parse_args(argv)
    module, data = load_run(args.run)
    splits = {"val": [data.val[i] for i in range(len(data.val))],
              "train": [data.train[i] for i in range(len(data.train))]}
    result = {}
    for name, items in splits.items():
        if len(items) < 2:
            continue
        result[name] = ablation_table(module, items, args.repeats)
        print(f"{name}: {len(items)} pairs, eps-MSE")
        print(f"{'bucket':<11s}" + "".join(f"{c:>14s}" for c in CASES))
        for bucket, row in result[name].items():
            print(f"{bucket:<11s}" + "".join(f"{row[c]:14.4f}" for c in CASES))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
