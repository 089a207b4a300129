"""Result files of an evaluation run: JSON (everything), CSV and Markdown tables, and a PNG plot.

Every file names the protocol and carries its definition text, the method and the dataset.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from evaluation.protocols import ProtocolConfig
from data.io import atomic_path, write_text_atomic

#: Preferred column order; other numeric per-object values follow in alphabetical order.
METRIC_ORDER = ("chamfer", "fscore@", "volume_iou", "clip_similarity", "psnr", "ssim", "lpips",
                "pred_to_gt", "gt_to_pred")
META_KEYS = {"object", "status", "error", "views", "random_weight_stages", "traceback", "pred_path", "gt_path", "alignment", "per_view", "seconds",
             "gt_points_source"}
#: Per-object diagnostics kept in results.json but left out of the tables and plot.
DETAIL_PREFIXES = ("num_", "voxels_")
LOWER_IS_BETTER = ("chamfer", "lpips", "pred_to_gt", "gt_to_pred")


def _order_key(name: str) -> tuple:
    for i, prefix in enumerate(METRIC_ORDER):
        if name == prefix or (prefix.endswith("@") and name.startswith(prefix)):
            return (i, name)
    return (len(METRIC_ORDER), name)


def metric_names(records: list[dict]) -> list[str]:
    """Numeric metric keys present in the successful records, in display order."""
    names = set()
    for r in records:
        if r.get("status") == "ok":
            names |= {k for k, v in r.items() if k not in META_KEYS and isinstance(v, (int, float))
                      and not isinstance(v, bool) and not k.startswith(DETAIL_PREFIXES)}
    return sorted(names, key=_order_key)


def summarise(records: list[dict], cfg: ProtocolConfig, method: str, dataset: str) -> dict:
    """Means over successfully evaluated objects, counts and timing."""
    ok = [r for r in records if r.get("status") == "ok"]
    means = {}
    for name in metric_names(records):
        values = [float(r[name]) for r in ok if name in r and math.isfinite(float(r[name]))]
        means[name] = float(np.mean(values)) if values else None
    secs = [r["seconds"] for r in ok if "seconds" in r]
    return {
        "protocol": cfg.name, "method": method, "dataset": dataset,
        "objects_total": len(records), "objects_ok": len(ok),
        "objects_failed": [r["object"] for r in records if r.get("status") != "ok"],
        "mean": means, "seconds_per_object": float(np.mean(secs)) if secs else None,
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(records: list[dict], summary: dict, cfg: ProtocolConfig) -> str:
    names = metric_names(records)
    head = ["method", "dataset", "objects"] + names + ["s/object"]
    row = [summary["method"], summary["dataset"], f"{summary['objects_ok']}/{summary['objects_total']}"]
    row += [_fmt(summary["mean"].get(n)) for n in names] + [_fmt(summary["seconds_per_object"])]
    per_obj = []
    for r in records:
        if r.get("status") == "ok":
            per_obj.append([r["object"], "ok"] + [_fmt(r.get(n)) for n in names] + [_fmt(r.get("seconds"))])
        else:
            per_obj.append([r["object"], "error: " + str(r.get("error")).replace("|", "/")] + ["-"] * len(names)
                           + [_fmt(r.get("seconds"))])
    return "\n\n".join([
        f"# Evaluation: {summary['method']} on {summary['dataset']} (protocol `{cfg.name}`)",
        f"**Definition.** {cfg.definition.strip()}",
        "## Mean over objects",
        _markdown_table(head, [row]),
        "## Per object",
        _markdown_table(["object", "status"] + names + ["seconds"], per_obj),
    ]) + "\n"


def csv_text(records: list[dict], cfg: ProtocolConfig) -> str:
    names = metric_names(records)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["protocol", "object", "status"] + names + ["seconds", "error"])
    for r in records:
        writer.writerow([cfg.name, r["object"], r.get("status")] + [r.get(n, "") for n in names]
                        + [r.get("seconds", ""), r.get("error") or ""])
    return buf.getvalue()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else str(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def plot_png(records: list[dict], cfg: ProtocolConfig, path: Path, title: str) -> Path:
    """Per-object bars of up to three main metrics (failed objects shown as empty bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = metric_names(records)[:3] or ["seconds"]
    objects = [r["object"] + ("" if r.get("status") == "ok" else " (failed)") for r in records]
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6.0, 0.35 * len(objects) + 2), 2.6 * len(names)),
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        vals = [float(r[name]) if r.get("status") == "ok" and name in r else np.nan for r in records]
        ax.bar(range(len(objects)), np.nan_to_num(vals, nan=0.0, posinf=0.0), color="tab:blue")
        finite = [v for v in vals if np.isfinite(v)]
        if finite:
            ax.axhline(float(np.mean(finite)), color="tab:red", lw=1, label=f"mean {np.mean(finite):.4g}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel(name + (" (lower better)" if name.startswith(LOWER_IS_BETTER) else ""), fontsize=8)
        ax.set_xticks(range(len(objects)))
        ax.set_xticklabels(objects, rotation=60, ha="right", fontsize=7)
    axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def write_results(out_dir: str | Path, records: list[dict], cfg: ProtocolConfig, method: str, dataset: str,
                  extra: dict | None = None) -> dict:
    """Write ``results.json``, ``results.csv``, ``results.md`` and ``results.png`` into ``out_dir``.

    Returns the summary dict.
    """
    out = Path(out_dir)
    summary = summarise(records, cfg, method, dataset)
    if not cfg.render_metrics and "Render metrics" in cfg.definition:
        cfg = replace(cfg, definition=cfg.definition.strip() + " [Render metrics were switched off for this run.]")
    payload = {"protocol": cfg.name, "definition": cfg.definition.strip(), "config": asdict(cfg),
               "summary": summary, "objects": records,
               "environment": {"python": platform.python_version(), "machine": platform.machine()},
               **(extra or {})}
    write_text_atomic(out / "results.json", json.dumps(_jsonable(payload), indent=1))
    write_text_atomic(out / "results.csv", csv_text(records, cfg))
    write_text_atomic(out / "results.md", markdown_report(records, summary, cfg))
    plot_png(records, cfg, out / "results.png", f"{method} on {dataset} - protocol {cfg.name}")
    return summary


def comparison_tables(result_files: list[str | Path]) -> tuple[str, str, dict]:
    """Method x dataset comparison of several ``results.json`` (same protocol required).

    Returns (markdown, csv, json-able dict).
    """
    loaded = [json.loads(Path(p).read_text()) for p in result_files]
    protocols = {d["protocol"] for d in loaded}
    if len(protocols) != 1:
        raise ValueError(f"cannot compare results of different protocols {sorted(protocols)} in one table")
    names = sorted({k for d in loaded for k in d["summary"]["mean"]}, key=_order_key)
    header = ["method", "dataset", "objects"] + names + ["s/object"]
    rows = []
    for d in loaded:
        s = d["summary"]
        rows.append([s["method"], s["dataset"], f"{s['objects_ok']}/{s['objects_total']}"]
                    + [_fmt(s["mean"].get(n)) for n in names] + [_fmt(s["seconds_per_object"])])
    protocol = protocols.pop()
    md = (f"# Comparison (protocol `{protocol}`)\n\n**Definition.** {loaded[0]['definition']}\n\n"
          + _markdown_table(header, rows) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["protocol"] + header)
    for r in rows:
        writer.writerow([protocol] + r)
    return md, buf.getvalue(), {"protocol": protocol, "definition": loaded[0]["definition"],
                                "rows": [d["summary"] for d in loaded]}
