"""The one registry of pretrained weights: where each file lives and how it reaches this machine.

Every weight the project can use is listed in :data:`REGISTRY`. A *source* names where to take it from:

* ``None`` or ``"default"``: the registry's default location (the official One-2-3-45 files on the Hugging Face
  repo ``One-2-3-45/code``, or rembg's release asset for U^2-Net);
* an existing local file or folder (``~`` expanded);
* ``"hf://<org>/<repo>/<path/in/repo>"``: one file of a Hugging Face repo;
* ``"hf://<org>/<repo>"`` or a bare ``"<org>/<repo>"``: a whole repo snapshot (e.g. a diffusers folder).

Hub files are fetched with ``huggingface_hub`` into the standard cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, default ``~/.cache/huggingface/hub``) with a progress bar, on first use only. URL-only files
(U^2-Net) go to rembg's own folder (``$U2NET_HOME``, default ``~/.u2net``) so that rembg finds them too.

Every file is looked up locally first (a cached file is used without any network access). Only when one is
missing is its server (``$HF_ENDPOINT``, default https://huggingface.co, or the URL's host) probed, once per
process with a short timeout (:data:`PROBE_TIMEOUT_S`): unreachable -> the missing-weights message at once
(instead of the hub client's minute of retries); reachable -> download. ``HF_HUB_OFFLINE=1`` forbids every
download (hub and URL); the cache is still used.

:func:`resolve_all` resolves several weights at once and, when any is missing and cannot be downloaded,
raises ONE :class:`MissingWeightsError` listing every missing file and how to supply it, so a run stops
before doing any work. Stage packages accept plain paths and never resolve weights themselves.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from data.io import atomic_path

OFFICIAL_REPO = "One-2-3-45/code"
_TRUE = {"1", "ON", "YES", "TRUE"}
_BARE_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
#: A bare "a/b" ending in one of these is a (missing) local file, never a hub repo id.
_WEIGHT_SUFFIXES = {".ckpt", ".pth", ".pt", ".bin", ".onnx", ".safetensors", ".yaml", ".json"}
#: Seconds the reachability probe of a download server may take (DNS included) before it counts as unreachable.
PROBE_TIMEOUT_S = 3.0
_PROBED: dict[str, tuple[bool, str]] = {}  # server base URL -> (reachable, reason); one probe per process


@dataclass(frozen=True)
class WeightSpec:
    """A known pretrained file.

    Attributes:
        name: registry key (also the config key under ``weights:``).
        description: what it is and which stage uses it.
        repo_id, filename: default Hugging Face location (``filename`` None = whole-repo snapshot).
        url: direct download URL for files not on the hub (then ``repo_id`` is None).
        url_md5: expected MD5 of the URL download (checked after download).
        cache_env, cache_default: folder for URL downloads (environment variable and its default).
        optional: True for weights whose absence only degrades a step (a weight-free fallback exists).
        allow_patterns: for whole-repo snapshots from the default repo, the files to fetch (None = all).
        extra: weights of a separate system (Zero123++), not part of One-2-3-45's chain: fetched by
            ``scripts/download_weights.py`` only when named with ``--only``.
        unreleased: how to make the file when no released copy exists (then there is no default source, and
            the missing-weights message says this instead of where to download it).
    """

    name: str
    description: str
    repo_id: str | None = None
    filename: str | None = None
    url: str | None = None
    url_md5: str | None = None
    cache_env: str | None = None
    cache_default: str | None = None
    optional: bool = False
    allow_patterns: tuple[str, ...] | None = None
    extra: bool = False
    unreleased: str | None = None

    @property
    def default_source(self) -> str:
        if self.repo_id is not None:
            return f"hf://{self.repo_id}" + (f"/{self.filename}" if self.filename else "")
        return self.url or ""

    @property
    def basename(self) -> str:
        return Path(self.filename or self.url or self.name).name


REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            "zero123",
            "Zero123-XL multi-view diffusion checkpoint (LDM format; includes its CLIP ViT-L/14 image encoder)",
            OFFICIAL_REPO,
            "zero123-xl.ckpt",
        ),
        WeightSpec(
            "reconstruction",
            "One-2-3-45 cost-volume SDF reconstruction network (SparseNeuS-style, lod0, step 215000)",
            OFFICIAL_REPO,
            "SparseNeuS_demo_v1/exp/lod0/checkpoints/ckpt_215000.pth",
        ),
        WeightSpec(
            "loftr",
            "LoFTR matcher, indoor dual-softmax 'new' weights (elevation estimation)",
            OFFICIAL_REPO,
            "elevation_estimate/utils/weights/indoor_ds_new.ckpt",
        ),
        WeightSpec(
            "sam",
            "Segment Anything ViT-H (background removal refinement; GPU installs with the 'sam' extra)",
            OFFICIAL_REPO,
            "sam_vit_h_4b8939.pth",
            optional=True,
        ),
        WeightSpec(
            "u2net",
            "rembg's default U^2-Net ONNX model (background removal; the 'rembg' extra)",
            url="https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx",
            url_md5="60024c5c889badc19c04ad937298a77b",
            cache_env="U2NET_HOME",
            cache_default="~/.u2net",
            optional=True,
        ),
        WeightSpec(
            "text2image",
            "Stable Diffusion 1.5 text-to-image pipeline (diffusers folder; only for --prompt)",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            None,
            allow_patterns=(
                "model_index.json", "*/*.json", "*/*.txt", "unet/diffusion_pytorch_model.safetensors",
                "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                "safety_checker/model.safetensors",
            ),
            optional=True,
        ),
        WeightSpec(
            "zero123plus_v12",
            "Zero123++ v1.2 six-view diffusion pipeline (hub folder layout: unet, vae, text/vision encoders, ...)",
            "sudo-ai/zero123plus-v1.2",
            None,
            allow_patterns=("model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"),
            optional=True,
            extra=True,
        ),
        WeightSpec(
            "zero123plus_v11",
            "Zero123++ v1.1 six-view diffusion pipeline (hub folder layout)",
            "sudo-ai/zero123plus-v1.1",
            None,
            allow_patterns=("model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"),
            optional=True,
            extra=True,
        ),
        WeightSpec(
            "instantmesh_unet",
            "InstantMesh's white-background fine-tune of the Zero123++ v1.2 UNet (plain UNet state dict)",
            "TencentARC/InstantMesh",
            "diffusion_pytorch_model.bin",
            optional=True,
            extra=True,
        ),
        WeightSpec(
            "zero123plus_depth_controlnet",
            "Zero123++ v1.1 depth ControlNet (diffusers ControlNetModel folder)",
            "sudo-ai/controlnet-zp11-depth-v1",
            None,
            optional=True,
            extra=True,
        ),
        WeightSpec(
            "reconstruction_zero123plus",
            "cost-volume SDF reconstruction network trained for the six Zero123++ views (generator zero123plus)",
            optional=True,
            extra=True,
            unreleased=(
                "no released checkpoint exists: train one with python scripts/bench_train_reconstruction.py "
                "--layout zero123plus (config configs/train/reconstruction_zero123plus_cpu.yaml; CPU, renders of "
                "../shared/data/meshes) and pass --set weights.reconstruction_zero123plus=OUT/train/checkpoints/last.ckpt"
            ),
        ),
    )
}


class MissingWeightsError(FileNotFoundError):
    """Some needed weights are neither local nor downloadable; the message lists all of them and the fixes."""

    def __init__(self, missing: list[tuple[WeightSpec, str, str]]):
        self.missing = missing
        super().__init__(format_missing(missing))


def downloads_disabled() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read at call time; it also disables URL downloads here)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().upper() in _TRUE


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder, read at call time: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    """The hub server, read at call time: ``$HF_ENDPOINT``, default https://huggingface.co."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT or "https://huggingface.co").rstrip("/")


def hub_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether the server of ``url`` answers at all (any HTTP status counts), probed once per process.

    The probe (one HEAD request to the server's root, through the usual proxy variables) runs in a thread
    bounded by ``timeout`` seconds, name resolution included.

    Returns:
        ``(True, "")`` or ``(False, reason)``.
    """
    parts = urllib.parse.urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    if base in _PROBED:
        return _PROBED[base]
    answer = [(False, f"{base} did not answer within {timeout:g} s (no network access?)")]

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(base + "/", method="HEAD"), timeout=timeout):
                pass
            answer[0] = (True, "")
        except urllib.error.HTTPError:  # an HTTP status, even 4xx/5xx: the server is there
            answer[0] = (True, "")
        except Exception as exc:  # refused, DNS failure, timeout, TLS ...
            reason = getattr(exc, "reason", exc)
            answer[0] = (False, f"{base} is unreachable ({type(reason).__name__}: {reason}; no network access?)")

    thread = threading.Thread(target=probe, name="weights-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    _PROBED[base] = answer[0]
    return answer[0]


def parse_source(source: str) -> tuple[str, str | None]:
    """Split a hub source into ``(repo_id, filename or None)``; raises ValueError for non-hub strings."""
    if source.startswith("hf://"):
        parts = source[5:].strip("/").split("/")
        if len(parts) < 2 or not all(parts[:2]):
            raise ValueError(f"bad hub source {source!r}: expected hf://<org>/<repo>[/<path in repo>]")
        return "/".join(parts[:2]), ("/".join(parts[2:]) or None)
    if _BARE_REPO.match(source) and Path(source).suffix.lower() not in _WEIGHT_SUFFIXES:
        return source, None
    raise ValueError(f"{source!r} is not a hub source")


def _url_cache_path(spec: WeightSpec) -> Path:
    folder = os.environ.get(spec.cache_env or "", "") or spec.cache_default or "~/.cache/one2345"
    return Path(folder).expanduser() / spec.basename


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_url(spec: WeightSpec, dest: Path) -> Path:
    from tqdm import tqdm

    with atomic_path(dest) as tmp, urllib.request.urlopen(spec.url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=spec.basename) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                fh.write(chunk)
                bar.update(len(chunk))
        if spec.url_md5 and _md5(tmp) != spec.url_md5:
            raise OSError(f"checksum mismatch for {spec.url} (expected md5 {spec.url_md5})")
    return dest


def _resolve_hub(repo_id: str, filename: str | None, download: bool, allow_patterns=None) -> Path:
    """The cached file or snapshot folder (``download=False``), else downloaded into the cache."""
    import huggingface_hub as hf

    kwargs = {"cache_dir": str(hub_cache_dir()), "local_files_only": not download}
    if download:
        kwargs["endpoint"] = hub_endpoint()
    if filename is None:
        patterns = list(allow_patterns) if allow_patterns else None
        return Path(hf.snapshot_download(repo_id, allow_patterns=patterns, **kwargs))
    return Path(hf.hf_hub_download(repo_id, filename, **kwargs))


def _cached_hub(repo_id: str, filename: str | None, allow_patterns=None) -> Path | None:
    """The file (or snapshot folder) already in the Hugging Face cache, without any network access."""
    try:
        return _resolve_hub(repo_id, filename, False, allow_patterns)
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return None


def try_resolve(name: str, source: str | None = None, *, download: bool = True) -> tuple[Path | None, str]:
    """Resolve one weight without raising.

    Returns:
        ``(path, "")`` when found (downloading it first if needed and allowed), else ``(None, reason)``.
    """
    spec = REGISTRY[name]
    if source in (None, "", "default") and not spec.default_source:
        return None, spec.unreleased or "no default location; give a local path"
    source = spec.default_source if source in (None, "", "default") else str(source)
    local = Path(source).expanduser()
    if not source.startswith(("hf://", "http://", "https://")) and local.exists():
        return local, ""
    if source.startswith(("http://", "https://")):
        dest = _url_cache_path(spec)
        if dest.is_file():
            return dest, ""
        if not download or downloads_disabled():
            return None, f"not in {dest.parent} and downloads are disabled (HF_HUB_OFFLINE=1)"
        reachable, why = hub_reachable(source)
        if not reachable:
            return None, f"not in {dest.parent}, and {why}"
        try:
            return _download_url(spec, dest), ""
        except Exception as exc:  # network errors come in many types
            return None, f"download from {source} failed: {exc}"
    try:
        repo_id, filename = parse_source(source)
    except ValueError:
        return None, f"local path {local} does not exist"
    patterns = spec.allow_patterns if source == spec.default_source else None
    cached = _cached_hub(repo_id, filename, patterns)
    if cached is not None:
        return cached, ""
    if not download or downloads_disabled():
        return None, f"not in the Hugging Face cache {hub_cache_dir()} and downloads are disabled (HF_HUB_OFFLINE=1)"
    reachable, why = hub_reachable(hub_endpoint())
    if not reachable:
        return None, f"not in the Hugging Face cache {hub_cache_dir()}, and the hub {why}"
    try:
        return _resolve_hub(repo_id, filename, True, patterns), ""
    except Exception as exc:  # HTTP errors (404, gated repo, ...), interrupted download
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"hub download of {source} failed: {type(exc).__name__}: {first_line}"


def resolve_all(requests: Mapping[str, str | None], *, download: bool = True) -> dict[str, Path]:
    """Resolve several weights; raise ONE :class:`MissingWeightsError` naming every missing one.

    Args:
        requests: registry name -> source (None = the registry default).
        download: allow downloading into the cache (``HF_HUB_OFFLINE=1`` disables it regardless).
    """
    unknown = sorted(set(requests) - set(REGISTRY))
    if unknown:
        raise KeyError(f"unknown weight name(s) {unknown}; known: {sorted(REGISTRY)}")
    found, missing = {}, []
    for name, source in requests.items():
        path, reason = try_resolve(name, source, download=download)
        if path is None:
            spec = REGISTRY[name]
            given = source not in (None, "", "default")
            missing.append((spec, source if given else (spec.default_source or "(no released file)"), reason))
        else:
            found[name] = path
    if missing:
        raise MissingWeightsError(missing)
    return found


def resolve(name: str, source: str | None = None, *, download: bool = True) -> Path:
    """Resolve a single weight (see :func:`resolve_all`)."""
    return resolve_all({name: source}, download=download)[name]


def format_missing(missing: list[tuple[WeightSpec, str, str]]) -> str:
    """The single message listing every missing weight and the ways to supply it."""
    lines = [f"{len(missing)} model weight file(s) are missing, so nothing was run:"]
    for spec, source, reason in missing:
        lines += [f"  - {spec.name}: {spec.description}", f"      source: {source}", f"      problem: {reason}"]
    names = " ".join(spec.name for spec, _, _ in missing)
    lines += [
        "Supply them in any of these ways:",
        f"  * download them once with network access: python scripts/download_weights.py --only {names}",
        "    (fills the Hugging Face cache; copy that cache folder to an offline machine); on a machine with"
        " network access a run downloads them on first use unless HF_HUB_OFFLINE=1 is set;",
        "  * point the config at local copies, e.g. infer.py ... --set weights."
        + missing[0][0].name
        + "=/path/to/"
        + missing[0][0].basename
        + " (YAML: weights: {name: path});",
        "  * for a smoke test without any weights: --config configs/infer/tiny.yaml (random weights).",
    ]
    return "\n".join(lines)
