"""What one run of any generator produced (``PipelineOutput``); the output writers read only this."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from data import conventions as conv
from data.cameras import Cameras
from data.mesh import Mesh
from data.preprocess import PreprocessedImage
from data.views import Views

#: ``polar_source`` of generators whose views sit at fixed absolute poses (the input's polar angle is not needed).
POLAR_NOT_NEEDED = "not_needed"


@dataclass
class PipelineOutput:
    """Everything one run produced.

    Attributes:
        input: the preprocessing result (the 256x256 conditioning image and how it was segmented).
        first_stage: the views generated from the input: One-2-3-45's 8 first-stage views (official ids 0..3 +
            4..7 or 8..11), or the six Zero123++ views (ids 0..5); world-frame cameras.
        nearby: the nearby views ``k_j`` (4 around each first-stage view, official order), or None when the
            generator makes none (``zero123plus``).
        polar_deg: the input's polar angle used (deg from +z; ``elevation_deg = 90 - polar_deg``), or None when
            the generator does not need it (``polar_source == "not_needed"``).
        polar_source: "estimated" | "user" | "fallback" | "not_needed".
        estimate: the elevation estimate when estimation ran and succeeded.
        elevation_failure: the estimator's error message when the fallback was used.
        elevation_failure_reason: its typed reason (``ElevationError.reason``, e.g. "search_edge").
        mesh: coloured mesh in the pose.json world frame (z up, input camera at azimuth 30 deg).
        reconstruction: the reconstruction stage's full output (mesh, SDF volume, frame).
        timings: wall-clock seconds per stage, in execution order.
        cpu_timings: process CPU seconds per stage (all threads), same keys except ``load_models``.
        peak_memory_gb: per stage (same keys as ``cpu_timings``), GiB: CUDA allocator peak during the stage on a
            GPU; on a CPU the process's peak resident set so far.
        seed: the run seed (each generated item's seed is listed in ``view_seeds``).
        warnings: notes for the user: every fallback taken while building the models (e.g. ``half`` on a CPU)
            and during this run (GrabCut segmentation, the fallback polar angle, ...).
        random_weight_stages: stages that ran with random weights (outputs are meaningless then).
        ran: what actually ran (models, precisions, matcher, segmenter, device).
        weights: the weight files actually loaded (registry name -> path, or "random initialisation").
        generator: the view generator's registry name.
        sources: the views the reconstruction received (their cameras are the ones it used).
        reference: the reconstruction's 1-camera reference (its reference frame).
    """

    input: PreprocessedImage
    first_stage: Views
    nearby: Views | None
    polar_deg: float | None
    polar_source: str
    estimate: Any
    elevation_failure: str | None
    mesh: Mesh
    reconstruction: Any
    timings: dict[str, float]
    cpu_timings: dict[str, float]
    seed: int | None
    view_seeds: dict[str, int | None]
    warnings: list[str]
    random_weight_stages: tuple[str, ...]
    ran: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    elevation_failure_reason: str | None = None
    peak_memory_gb: dict[str, float] = field(default_factory=dict)
    generator: str = "one2345"
    sources: Views | None = None
    reference: Cameras | None = None

    @property
    def elevation_deg(self) -> float | None:
        return None if self.polar_deg is None else float(conv.polar_to_elevation_deg(self.polar_deg))

    @property
    def preview_polar_deg(self) -> float:
        """Polar angle of the turntable preview: the input's, else the reference camera's."""
        if self.polar_deg is not None:
            return float(self.polar_deg)
        if self.reference is not None:
            return float(self.reference.spherical()[0][0])
        return 90.0
