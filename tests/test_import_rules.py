"""The dependency rule, enforced by parsing imports.

data/ imports no stage package; zero123/, elevation/, reconstruction/, score_distillation/ import only data/ (never
each other); evaluation/ (metrics, benchmark tables) imports only data/ and is imported by no stage. Composers
(the pipeline/ package, sjc_pipeline, scripts, infer, train) may import anything.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"zero123", "zero123plus", "elevation", "reconstruction", "score_distillation"}
PROJECT = STAGES | {"data", "evaluation", "scripts", "tests", "infer", "train", "pipeline", "sjc_pipeline"}
ALLOWED = {"data": {"data"}, "evaluation": {"evaluation", "data"}, **{s: {s, "data"} for s in STAGES}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package_dir: Path, allowed: set[str]) -> list[str]:
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        for name in sorted(imported_top_levels(path) & PROJECT - allowed):
            bad.append(f"{path.relative_to(package_dir.parent)} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_rule(package):
    assert violations(ROOT / package, ALLOWED[package]) == []


def test_rule_detects_a_violation(tmp_path):
    pkg = tmp_path / "elevation"
    pkg.mkdir()
    (pkg / "bad.py").write_text("from zero123.pipeline import X\nimport reconstruction\n")
    assert violations(pkg, ALLOWED["elevation"]) == [
        "elevation/bad.py imports reconstruction",
        "elevation/bad.py imports zero123",
    ]


def test_score_distillation_may_not_import_zero123_or_the_composer(tmp_path):
    pkg = tmp_path / "score_distillation"
    pkg.mkdir()
    (pkg / "bad.py").write_text("import sjc_pipeline\nfrom zero123.score import SJCScore\nfrom data.cameras import Cameras\n")
    assert violations(pkg, ALLOWED["score_distillation"]) == [
        "score_distillation/bad.py imports sjc_pipeline",
        "score_distillation/bad.py imports zero123",
    ]


def test_stages_may_not_import_evaluation(tmp_path):
    pkg = tmp_path / "reconstruction"
    pkg.mkdir()
    (pkg / "bad.py").write_text("from evaluation.distances import compare_point_clouds\n")
    assert violations(pkg, ALLOWED["reconstruction"]) == ["reconstruction/bad.py imports evaluation"]


def test_evaluation_is_checked_and_imports_only_data():
    assert ALLOWED["evaluation"] == {"evaluation", "data"}
    assert violations(ROOT / "evaluation", ALLOWED["evaluation"]) == []


def internal_stage_imports(paths: list[Path]) -> list[str]:
    """Imports of a stage package's submodules (``from zero123.pipeline import X``): composers use the public API
    that each stage package's ``__init__`` exports (``from zero123 import X``)."""
    bad = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            bad += [f"{path.relative_to(ROOT)} imports {m}" for m in modules
                    if m.split(".")[0] in STAGES and "." in m]
    return bad


def test_the_pipeline_reaches_stages_only_through_their_public_api():
    assert internal_stage_imports(sorted((ROOT / "pipeline").rglob("*.py")) + [ROOT / "infer.py"]) == []


def test_public_api_rule_detects_an_internal_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from zero123.pipeline import whiten_near_white\nfrom elevation import ElevationEstimator\n")
    old = globals()["ROOT"]
    try:
        globals()["ROOT"] = tmp_path
        assert internal_stage_imports([bad]) == ["bad.py imports zero123.pipeline"]
    finally:
        globals()["ROOT"] = old
