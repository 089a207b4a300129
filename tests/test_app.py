"""app.py without a browser: defaults (127.0.0.1, no share link), the banner for random and for missing weights,
and errors that become one line in the page (no gradio needed; the browser test is tests/test_app_browser.py)."""
from __future__ import annotations

import pytest

app = pytest.importorskip("app")
TINY = "configs/infer/tiny.yaml"


def test_listens_on_localhost_without_a_share_link_by_default():
    args = app.build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.share is False and args.texture_size == "1024"


def test_banner_says_random_weights():
    banner = app.Demo(TINY, [], "unused").banner()
    assert "RANDOM WEIGHTS" in banner and "Weights missing" not in banner


def test_banner_shows_the_missing_weights_message_not_a_stack_trace(tmp_path):
    missing = tmp_path / "nowhere" / "zero123-xl.ckpt"
    banner = app.Demo(TINY, [f"weights.zero123={missing}"], "unused").banner()
    assert "Weights missing" in banner and str(missing) in banner and "Traceback" not in banner


def test_request_errors_are_messages(tmp_path):
    demo = app.Demo(TINY, [], tmp_path)
    with pytest.raises(app.DemoError, match="Upload an image"):
        demo.run(None, "one2345", 0, False, 0.0, 32, "off")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(app.DemoError, match="notes.png"):
        demo.run(str(bad), "one2345", 0, False, 0.0, 32, "off")
    assert demo.pipes == {}  # nothing was built for requests that cannot run


@pytest.mark.slow
def test_a_request_reports_every_stage_and_writes_the_outputs(tmp_path):
    from conftest import require_shared

    image = require_shared("data/images/dreamgaussian/ghost_rgba.png")
    demo = app.Demo(TINY, [], tmp_path)
    steps = []
    res = demo.run(str(image), "one2345", 0, True, 20.0, 32, "32", lambda frac, desc="": steps.append((frac, desc)))
    descs = [d for _, d in steps]
    assert "reconstructing the mesh" in descs and "baking a 32^2 texture" in descs
    assert descs.index("Zero123: first-stage views 0-3") < descs.index("reconstructing the mesh")
    assert [f for f, _ in steps] == sorted(f for f, _ in steps)  # progress only moves forwards
    assert res["out"].polar_source == "user" and res["out"].polar_deg == 70.0
    assert (res["folder"] / "mesh.glb").is_file() and res["out"].mesh.texture.shape == (32, 32, 3)
    from pipeline.context import Timer
    assert Timer.__call__.__name__ == "__call__"  # the progress hook is removed after the run
