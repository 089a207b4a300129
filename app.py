"""Web demo: image -> views -> elevation -> textured 3D mesh in the browser (Gradio; ``make demo-install``).

    python app.py [--config configs/infer/default.yaml] [--examples DIR] [--host 127.0.0.1] [--port 7860]
                  [--share] [--output outputs/demo] [--set key=value ...]

Upload an image (or pick an example of ``--examples``), choose the generator, seed, a known elevation or the
estimate, mesh resolution and texture size, and get the preprocessed input, the generated views, the elevation
error curve with its confidence, a 3D viewer of the GLB and every output file (the folder ``infer.py`` writes).
Models are built once per process (per generator) and reused; requests queue and run one at a time. It listens on
127.0.0.1 unless ``--host`` says otherwise, and makes no public share link unless ``--share``. A banner says when
the weights are random (``configs/infer/tiny.yaml``) or missing (the missing-weights message, no stack trace).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "infer" / "default.yaml"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MESH_RESOLUTIONS = (32, 64, 128, 256)
TEXTURE_SIZES = ("off", "512", "1024", "2048")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="One-2-3-45 web demo (Gradio).")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="pipeline config (configs/infer/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable (as infer.py)")
    p.add_argument("--examples", default=None, help="folder of example images shown under the upload")
    p.add_argument("--output", default="outputs/demo", help="where each request's output folder is written")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    p.add_argument("--texture-size", default="1024", help="the texture size selected at start (off, or texels)")
    return p


class DemoError(RuntimeError):
    """A request that cannot run; the message is shown in the page's banner."""


#: The generators' timed stages (pipeline.context.Timer names) as the page's progress text.
STAGE_TEXT = {
    "preprocess": "preprocessing the image", "zero123_stage1_views_0_3": "Zero123: first-stage views 0-3",
    "zero123_stage2_view_0": "Zero123: nearby views of view 0", "elevation": "estimating the elevation",
    "zero123_stage1_ring_2": "Zero123: second ring", "zero123_stage2_other_views": "Zero123: the other nearby views",
    "reconstruction": "reconstructing the mesh", "zero123plus": "Zero123++: six views",
    "zero123_nearby_views": "Zero123: nearby views of the six",
}


@contextlib.contextmanager
def stage_progress(step):
    """Report every timed stage of a run to ``step(fraction, desc=...)`` (wraps ``Timer.__call__`` for the duration;
    requests run one at a time under :attr:`Demo.lock`)."""
    from pipeline.context import Timer

    original, seen = Timer.__call__, []

    def reporting(self, name: str):
        seen.append(name)
        step(min(0.1 + 0.1 * len(seen), 0.75), desc=STAGE_TEXT.get(name, name.replace("_", " ")))
        return original(self, name)

    Timer.__call__ = reporting
    try:
        yield seen
    finally:
        Timer.__call__ = original


class Demo:
    """The models (built once per generator, reused), the request lock and one request's work."""

    def __init__(self, config: str, overrides: list[str], output: str | Path):
        from pipeline import load_pipeline_config

        self.config, self.overrides, self.output = config, list(overrides), Path(output)
        self.cfg = load_pipeline_config(config, overrides=self.overrides)  # ConfigError: stops at start-up
        self.pipes: dict[str, object] = {}
        self.weight_paths: dict[str, dict] = {}
        self.lock = threading.Lock()  # one pipeline run at a time, whatever the queue does
        self.count = 0

    # ------------------------------------------------------------------ banner
    def banner(self, generator: str | None = None) -> str:
        """Markdown: random-weight warning or the missing-weights message (empty when all is well)."""
        from pipeline import load_pipeline_config

        cfg = load_pipeline_config(self.config, overrides=self.overrides + self._generator_set(generator))
        notes = []
        if cfg.random_weight_stages:
            notes.append(f"**RANDOM WEIGHTS** for {', '.join(cfg.random_weight_stages)}: the views, the angle and "
                         f"the mesh are meaningless (smoke test only). {cfg.label or ''}")
        try:
            self._weights(cfg)
        except DemoError as exc:
            notes.append(f"**Weights missing**: {exc}")
        return "\n\n".join(notes)

    @staticmethod
    def _generator_set(generator: str | None) -> list[str]:
        return [f"generator={generator}"] if generator else []

    def _weights(self, cfg) -> dict:
        from data.weights import MissingWeightsError, resolve_all
        from pipeline import required_weights

        if cfg.generator not in self.weight_paths:
            try:
                self.weight_paths[cfg.generator] = resolve_all(required_weights(cfg))
            except MissingWeightsError as exc:
                raise DemoError(str(exc)) from None
        return self.weight_paths[cfg.generator]

    def pipeline(self, cfg):
        """The generator of ``cfg``, built on first use and kept for the process."""
        from pipeline import build_pipeline

        if cfg.generator not in self.pipes:
            self.pipes[cfg.generator] = build_pipeline(cfg, weight_paths=self._weights(cfg))
        return self.pipes[cfg.generator]

    # ------------------------------------------------------------------ one request
    def run(self, image_path: str | None, generator: str, seed: float, known_elevation: bool, elevation_deg: float,
            mesh_resolution: int, texture: str, progress=None) -> dict:
        """Everything the page shows for one request; raises DemoError with the message to show."""
        from data import conventions as conv
        from data.config import ConfigError
        from data.preprocess import PreprocessError, load_image
        from pipeline import PipelineError, load_pipeline_config, write_outputs
        from pipeline.texture import add_texture

        step = progress or (lambda *a, **k: None)
        if not image_path:
            raise DemoError("Upload an image first (PNG, JPEG, WebP, ...) or pick an example.")
        sets = self.overrides + self._generator_set(generator) + [f"mesh_resolution={int(mesh_resolution)}",
                                                                   f"seed={int(seed)}"]
        if known_elevation:
            sets.append(f"elevation_policy.polar_deg={float(conv.elevation_to_polar_deg(float(elevation_deg)))}")
        try:
            cfg = load_pipeline_config(self.config, overrides=sets)
            step(0.02, desc="checking the image")
            image = load_image(image_path)  # errors name the file and say what is wrong
        except (ConfigError, PreprocessError) as exc:
            raise DemoError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 -- any unreadable upload is the user's error, not a crash
            raise DemoError(f"{Path(image_path).name} cannot be read as an image: {exc}") from None
        name = Path(image_path).name
        with self.lock:
            step(0.05, desc="building the models (first request only)")
            pipe = self.pipeline(cfg)
            pipe.cfg = cfg  # per-request settings (resolution, seed, angle); the models stay
            step(0.1, desc="running the view generator")
            try:
                with stage_progress(step):
                    out = pipe(image, source_name=name)
                if texture != "off":
                    step(0.8, desc=f"baking a {texture}^2 texture")
                    out = add_texture(pipe, out, int(texture))
                step(0.9, desc="writing the outputs")
                self.count += 1
                folder = self.output / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}-{Path(name).stem}"
                write_outputs(out, cfg, folder, "glb", name)
            except (PreprocessError, PipelineError, ValueError) as exc:
                raise DemoError(str(exc)) from None
        return {"out": out, "folder": folder, "cfg": cfg}


def elevation_plot(out):
    """PIL image of the elevation error curve (error vs candidate polar angle), or None without an estimate."""
    est = out.estimate
    if est is None or not getattr(est, "error_curve", None):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    polar, err = zip(*[(float(c), float(e)) for c, e in est.error_curve])
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(polar, err, "o-", ms=3)
    ax.axvline(float(est.polar_deg), color="r", ls="--", label=f"estimate {float(est.polar_deg):g} deg")
    ax.set_xlabel("candidate polar angle (deg from +z)")
    ax.set_ylabel("reprojection error (px)")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue()))


def elevation_text(out) -> str:
    if out.polar_deg is None:
        return "The elevation is not needed by this generator."
    text = f"Polar angle **{out.polar_deg:g} deg** (elevation {out.elevation_deg:g} deg), source: {out.polar_source}"
    if out.estimate is not None:
        text += f"; confidence {float(out.estimate.confidence):.2f}"
    if out.polar_source == "fallback":
        text += f". The estimate failed ({out.elevation_failure}); the official fallback of 90 deg was used."
    return text


def build_ui(demo: Demo, examples: list[str], texture_default: str = "1024"):
    import gradio as gr
    from PIL import Image
    from pipeline import GENERATORS

    def submit(image_path, generator, seed, known, elevation, resolution, texture,
               progress=gr.Progress(track_tqdm=True)):
        banner = demo.banner(generator)
        try:
            res = demo.run(image_path, generator, seed, known, elevation, int(resolution), texture, progress)
        except DemoError as exc:
            message = f"**Error:** {exc}"
            return (f"{banner}\n\n{message}" if banner else message, None, None, None, "", None, None)
        except Exception as exc:  # noqa: BLE001 -- a bug: one line in the page, the traceback in the server log
            import traceback

            traceback.print_exc()
            message = f"**Error:** unexpected {type(exc).__name__}: {exc} (details in the server log)"
            return (f"{banner}\n\n{message}" if banner else message, None, None, None, "", None, None)
        out, folder = res["out"], res["folder"]
        files = sorted(str(p) for p in folder.iterdir() if p.is_file())
        status = f"Done in {sum(out.timings.values()):.1f} s; outputs in `{folder}`."
        return (f"{banner}\n\n{status}" if banner else status, Image.open(folder / "input.png"),
                Image.open(folder / "views.png"), elevation_plot(out), elevation_text(out),
                str(folder / "mesh.glb"), files)

    with gr.Blocks(title="One-2-3-45") as ui:
        gr.Markdown("# One-2-3-45: one image to a textured 3D mesh")
        banner = gr.Markdown(demo.banner(), elem_id="banner")
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Input image", file_count="single", type="filepath", elem_id="upload")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[image], label="Examples")
                generator = gr.Dropdown(list(GENERATORS), value=demo.cfg.generator, label="Generator")
                seed = gr.Number(value=demo.cfg.seed if demo.cfg.seed is not None else 0, precision=0, label="Seed")
                known = gr.Checkbox(value=False, label="Known elevation (skip the estimate)")
                elevation = gr.Slider(-10, 60, value=0, step=1, label="Elevation above the horizon (deg)")
                resolution = gr.Dropdown([str(r) for r in MESH_RESOLUTIONS], value=str(demo.cfg.mesh_resolution)
                                         if demo.cfg.mesh_resolution in MESH_RESOLUTIONS else "256",
                                         label="Mesh resolution")
                sizes = list(TEXTURE_SIZES) + ([texture_default] if texture_default not in TEXTURE_SIZES else [])
                texture = gr.Dropdown(sizes, value=texture_default, label="Texture size (off: vertex colours)")
                run = gr.Button("Generate", variant="primary", elem_id="run")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                viewer = gr.Model3D(label="3D mesh (GLB)", elem_id="viewer", clear_color=(1, 1, 1, 1))
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads",
                                    interactive=False)
                with gr.Row():
                    preprocessed = gr.Image(label="Preprocessed input", elem_id="preprocessed", type="pil")
                    curve = gr.Image(label="Elevation error curve", elem_id="curve", type="pil")
                elevation_md = gr.Markdown(elem_id="elevation")
                views = gr.Image(label="Generated views", elem_id="views", type="pil")
        run.click(submit, [image, generator, seed, known, elevation, resolution, texture],
                  [status, preprocessed, views, curve, elevation_md, viewer, downloads],
                  concurrency_limit=1)
        del banner
    return ui


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from data.config import ConfigError

    try:
        demo = Demo(args.config, args.overrides, args.output)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    examples = []
    if args.examples:
        folder = Path(args.examples)
        if not folder.is_dir():
            print(f"error: --examples {folder} is not a folder")
            return 2
        examples = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.texture_size != "off" and not (args.texture_size.isdigit() and int(args.texture_size) >= 16):
        print(f"error: --texture-size must be 'off' or a number >= 16, got {args.texture_size!r}")
        return 2
    ui = build_ui(demo, examples, args.texture_size)
    ui.queue(default_concurrency_limit=1, max_size=16)
    allowed = [str(Path(args.output).resolve())] + ([str(Path(args.examples).resolve())] if args.examples else [])
    print(f"One-2-3-45 demo on http://{args.host}:{args.port}", flush=True)
    ui.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=allowed,
              show_error=False, ssr_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
