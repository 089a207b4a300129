"""Does a Zero123 training run use its conditioning? Loss with true vs ablated inputs, per timestep bucket.

Loads ``RUN/checkpoints/last.ckpt`` of a ``train.py`` Zero123 run (trained weights; ``--ema``: the EMA UNet) and
scores pairs with the same (timestep, noise) draws under: the true inputs, a zero concat latent, another pair's
concat latent, a zero cross-attention context, and another pair's pose ("shuffled_pose": a fixed random
derangement of the pairs' pose codes). Per timestep bucket and "overall" (the bucket losses weighted by bucket
width, i.e. the training loss at t ~ U{0..999}). For true vs shuffled pose it also reports, per pair, whether the
true pose has the lower loss (win rate) and a paired bootstrap 95 % interval of the mean loss difference.

Splits: ``val`` = the run's validation pairs, or with ``--pairs-per-object N`` on a run with ``holdout_views``:
N fixed pairs per training object whose **target** is a held-out view (never seen in training) and whose
conditioning image is a training view; ``train`` = the same number of fixed pairs among the training views.

    python scripts/zero123_conditioning_ablation.py runs/zero123_tiny [--repeats 16] [--out ablation.json]
    python scripts/zero123_conditioning_ablation.py runs/zero123_pose_demo --pairs-per-object 32 --out runs/x.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.datasets.rendered import collate, read_id_list  # noqa: E402
from data.io import write_text_atomic  # noqa: E402
from zero123.training.data import ViewSubsetPairs, Zero123DataModule  # noqa: E402
from zero123.training.init import initial_model, scale_latents_by_std  # noqa: E402
from zero123.training.lit_module import Zero123LitModule, batch_pose_code  # noqa: E402
from zero123.training.run import calibration_images, load_train_config  # noqa: E402

BUCKETS = ((0, 100), (100, 300), (300, 600), (600, 1000))
CASES = ("true", "zero_concat", "other_concat", "zero_context", "shuffled_pose")


def load_run(run: Path, ema: bool = False, checkpoint: str = "last.ckpt") -> tuple[Zero123LitModule, Zero123DataModule]:
    cfg = load_train_config(run / "train_config.yaml")
    ckpt = run / "checkpoints" / checkpoint
    if not ckpt.is_file():
        raise SystemExit(f"error: {ckpt} not found (pass the output_dir of a finished train.py Zero123 run)")
    _, model = initial_model(cfg.init, cfg.model_config)
    module = Zero123LitModule(model, cfg)
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    if ema:
        if module.ema is None:
            raise SystemExit("error: --ema given but the run was trained with use_ema: false")
        model.unet.load_state_dict(module.unet_state(use_ema=True))
    if cfg.init.scale_by_std:  # the scale is not in the state dict: recompute it from the loaded VAE
        scale_latents_by_std(model, calibration_images(cfg))
    data = Zero123DataModule(cfg.data, cfg.holdout_views)
    data.setup("fit")
    return module.eval(), data


def fixed_pairs(module: Zero123LitModule, data: Zero123DataModule, per_object: int) -> dict[str, list[dict]]:
    """``per_object`` fixed pairs per (distinct) training object: training view -> held-out / training view."""
    cfg = module.cfg
    if not data.holdout:
        raise SystemExit("error: --pairs-per-object needs a run with holdout_views (targets never seen in training)")
    ids = list(dict.fromkeys(read_id_list(cfg.data.train_list))) if cfg.data.train_list else list(data.train.ids)
    ids = ids * per_object
    size, seed = cfg.data.image_size, cfg.data.val_seed
    held = ViewSubsetPairs(cfg.data.root, ids, size, seed, data.kept, data.holdout)
    seen = ViewSubsetPairs(cfg.data.root, ids, size, seed + 1, data.kept, data.kept)
    return {"heldout_views": [held[i] for i in range(len(held))], "train_views": [seen[i] for i in range(len(seen))]}


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A fixed random permutation without fixed points (a random cycle through all n items)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = torch.roll(order, -1)
    return perm


@torch.no_grad()
def per_pair_losses(module: Zero123LitModule, items: list[dict], repeats: int) -> dict[str, dict[str, torch.Tensor]]:
    """{bucket: {case: (P,) eps-MSE per pair}} over ``repeats`` (t, noise) draws per pair, identical across cases."""
    model, batch = module.model, collate(items)
    z, concat, embeds = module.encode_batch(batch, torch.Generator().manual_seed(0))
    code = batch_pose_code(batch)
    n = z.shape[0]
    other = derangement(n)
    rep = lambda x: x.repeat(repeats, *([1] * (x.ndim - 1)))  # noqa: E731
    table = {}
    for lo, hi in BUCKETS:
        gen = torch.Generator().manual_seed(lo)
        t = torch.randint(lo, hi, (n * repeats,), generator=gen)
        eps = torch.randn((t.shape[0], *z.shape[1:]), generator=gen)
        acp = model.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = acp.sqrt() * rep(z) + (1.0 - acp).sqrt() * eps

        def loss(cc: torch.Tensor, pose: torch.Tensor, zero_context: bool = False) -> torch.Tensor:
            context = model.project_context(rep(embeds), rep(pose))
            context = torch.zeros_like(context) if zero_context else context
            err = ((model.predict_noise(noisy, t, context, rep(cc)).float() - eps) ** 2).mean(dim=(1, 2, 3))
            return err.view(repeats, n).mean(0)

        table[f"t{lo}-{hi}"] = dict(zip(CASES, (
            loss(concat, code), loss(torch.zeros_like(concat), code), loss(concat[other], code),
            loss(concat, code, zero_context=True), loss(concat, code[other]))))
    widths = torch.tensor([hi - lo for lo, hi in BUCKETS], dtype=torch.float64)
    weights = widths / widths.sum()
    table["overall"] = {c: sum(w * table[f"t{lo}-{hi}"][c].double() for w, (lo, hi) in zip(weights, BUCKETS)).float()
                        for c in CASES}
    return table


def pose_statistics(true: torch.Tensor, shuffled: torch.Tensor, resamples: int = 2000) -> dict[str, float]:
    """Per-pair comparison of true vs shuffled pose losses: mean difference, its paired bootstrap 95 % interval,
    relative gain, and the fraction of pairs where the true pose has the lower loss."""
    diff = (shuffled - true).double()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(len(diff), (resamples, len(diff)), generator=gen)
    boot = diff[idx].mean(1)
    return {
        "pairs": len(diff), "mean_true": float(true.mean()), "mean_shuffled": float(shuffled.mean()),
        "mean_diff": float(diff.mean()), "ci95_low": float(boot.quantile(0.025)),
        "ci95_high": float(boot.quantile(0.975)), "relative_gain": float(diff.mean() / shuffled.double().mean()),
        "win_rate": float((diff > 0).double().mean()),
    }


def summarise(name: str, per_pair: dict[str, dict[str, torch.Tensor]]) -> dict:
    n = len(next(iter(per_pair["overall"].values())))
    means = {b: {c: float(v.mean()) for c, v in row.items()} for b, row in per_pair.items()}
    pose = {b: pose_statistics(row["true"], row["shuffled_pose"]) for b, row in per_pair.items()}
    print(f"{name}: {n} pairs, eps-MSE (mean over pairs)")
    print(f"{'bucket':<11s}" + "".join(f"{c:>14s}" for c in CASES))
    for bucket, row in means.items():
        print(f"{bucket:<11s}" + "".join(f"{row[c]:14.4f}" for c in CASES))
    print(f"{name}: true vs shuffled pose, per pair (diff = shuffled - true; > 0: the pose helps)")
    print(f"{'bucket':<11s}{'true':>10s}{'shuffled':>10s}{'diff':>10s}{'95% CI':>22s}{'gain':>8s}{'win rate':>10s}")
    for bucket, s in pose.items():
        ci = f"[{s['ci95_low']:.4f}, {s['ci95_high']:.4f}]"
        print(f"{bucket:<11s}{s['mean_true']:10.4f}{s['mean_shuffled']:10.4f}{s['mean_diff']:10.4f}{ci:>22s}"
              f"{100 * s['relative_gain']:7.1f}%{100 * s['win_rate']:9.1f}%")
    return {"pairs": n, "loss": means, "pose": pose}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="output_dir of a train.py Zero123 run")
    p.add_argument("--repeats", type=int, default=16, help="(timestep, noise) draws per pair and bucket")
    p.add_argument("--pairs-per-object", type=int, default=0,
                   help="N fixed pairs per training object with held-out target views (runs with holdout_views)")
    p.add_argument("--checkpoint", default="last.ckpt", help="file name in RUN/checkpoints")
    p.add_argument("--ema", action="store_true", help="score the EMA UNet instead of the trained weights")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the tables")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    module, data = load_run(args.run, ema=args.ema, checkpoint=args.checkpoint)
    if args.pairs_per_object:
        splits = fixed_pairs(module, data, args.pairs_per_object)
    else:
        splits = {"val": [data.val[i] for i in range(len(data.val))] if data.val is not None else [],
                  "train": [data.train[i] for i in range(len(data.train))]}
    result = {"run": str(args.run), "checkpoint": args.checkpoint, "weights": "ema" if args.ema else "trained", "repeats": args.repeats,
              "holdout_views": data.holdout, "seed": module.cfg.seed}
    for name, items in splits.items():
        if len(items) < 2:
            continue
        result[name] = summarise(name, per_pair_losses(module, items, args.repeats))
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
