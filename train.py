"""Training entry point: ``python train.py --config configs/train/<module>.yaml [key=value ...]``.

The YAML's ``task:`` picks the trainer; each task module exposes ``run_training(config_path, overrides)``.
Adding a trainable module = one line in :data:`TASKS`. ``--accelerator/--devices/--strategy/--max-steps``
are shorthands for the ``trainer.*`` overrides, e.g. ``--accelerator cpu --devices 2 --strategy ddp``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


#: task name -> module with ``run_training(config_path, overrides)``
TASKS = {
    "zero123": "zero123.training.run",
    "reconstruction": "reconstruction.training.fit",
    "zero123plus": "zero123plus.training.run",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True, help="training YAML with a 'task:' key")
    p.add_argument("--accelerator", default=None, help="cpu / gpu / auto")
    p.add_argument("--devices", default=None, help="number of devices or 'auto'")
    p.add_argument("--strategy", default=None, help="auto / ddp / ...")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--resume", default=None, help="Lightning checkpoint to resume from")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. trainer.max_steps=10")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from data.config import ConfigError, read_yaml

    try:
        task = read_yaml(args.config).get("task")  # missing / malformed YAML: one line naming file and line
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if task not in TASKS:
        print(f"error: {args.config}: 'task' must be one of {sorted(TASKS)}, got {task!r}", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    for flag, key in ((args.accelerator, "trainer.accelerator"), (args.devices, "trainer.devices"),
                      (args.strategy, "trainer.strategy"), (args.max_steps, "trainer.max_steps"),
                      (args.resume, "resume")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    from data.datasets.rendered import DatasetError

    try:
        summary = importlib.import_module(TASKS[task]).run_training(args.config, overrides)
    except (ConfigError, DatasetError) as exc:  # bad config, missing / incomplete data: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
