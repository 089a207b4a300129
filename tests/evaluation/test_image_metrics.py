"""PSNR / SSIM definitions, CLIP similarity with a tiny random CLIPModel, novel-view folders."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation.clip_similarity import ClipSimilarity
from evaluation.images import (LpipsUnavailable, composite_over_white, image_metrics, load_image, lpips_model,
                               psnr_per_view, ssim_per_view)
from evaluation.novel_views import evaluate_view_folders, target_views
from tiny_clip_fixture import tiny_clip  # noqa: F401  (pytest fixture)


def test_psnr_is_the_mean_of_per_view_values():
    gt = torch.zeros(2, 3, 8, 8)
    pred = gt.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1] += 0.01  # MSE 1e-4 -> 40 dB
    psnr = psnr_per_view(pred, gt)
    np.testing.assert_allclose(psnr.numpy(), [20.0, 40.0], rtol=1e-6)  # float32 inputs
    assert image_metrics(pred, gt)["psnr"] == pytest.approx(30.0)  # not 10 log10(1 / mean MSE) = 23.0


def test_ssim_identical_is_one_and_uses_torchmetrics_defaults():
    from torchmetrics.functional import structural_similarity_index_measure

    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=g)
    pred = (gt + 0.05 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    assert ssim_per_view(gt, gt).numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    ours = ssim_per_view(pred, gt)
    for i in range(2):
        direct = structural_similarity_index_measure(pred[i:i + 1], gt[i:i + 1])
        assert float(ours[i]) == pytest.approx(float(direct), abs=1e-6)
    dark = gt * 0.2  # data range taken from the images, not fixed to 1
    assert float(ssim_per_view(dark, pred * 0.2)[0]) == pytest.approx(
        float(structural_similarity_index_measure(dark[:1], pred[:1] * 0.2)), abs=1e-6)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red, the rest transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and img[:, 1, 1].tolist() == [1.0, 1.0, 1.0]
    t = torch.tensor([[[[0.2]], [[0.4]], [[0.6]], [[0.5]]]])
    np.testing.assert_allclose(composite_over_white(t).flatten().numpy(), [0.6, 0.7, 0.8])


def test_lpips_missing_is_reported_not_faked():
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(LpipsUnavailable, match="optional extra"):
            lpips_model()
    else:
        pytest.skip("lpips is installed here; the missing-package message cannot be checked")


def test_clip_per_view_scores_equal_a_direct_computation(tmp_path, tiny_clip):
    model, processor = tiny_clip
    g = torch.Generator().manual_seed(1)
    # renders saved as 8-bit PNGs and read back, as the evaluation does with stored renders
    for i, im in enumerate(torch.rand(10, 3, 48, 40, generator=g)):
        Image.fromarray((im.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    views = torch.stack([load_image(tmp_path / f"{i}.png") for i in range(10)])
    pred, gt = views[:5], views[5:]
    scorer = ClipSimilarity(model, processor, batch_size=2)
    scores = scorer.per_view(pred, gt)
    # direct: CLIP-normalise by hand (resize shortest edge 32 bicubic, centre crop, mean/std), project, cosine
    with torch.no_grad():
        def embed(images):
            px = processor(images=[im.permute(1, 2, 0).numpy() for im in images], return_tensors="pt",
                           do_rescale=False)["pixel_values"]
            feats = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
            return feats / feats.norm(dim=-1, keepdim=True)
        direct = (embed(pred) * embed(gt)).sum(-1)
    np.testing.assert_allclose(scores.numpy(), direct.numpy(), atol=1e-5)
    assert scorer.per_view(gt, gt).numpy() == pytest.approx(np.ones(5), abs=1e-5)
    assert scorer.score(pred, gt)["clip_similarity"] == pytest.approx(float(direct.mean()), abs=1e-5)
    # saved renders round trip: scores from PNG files equal scores from the tensors they hold
    model.save_pretrained(tmp_path / "clip")
    processor.save_pretrained(tmp_path / "clip")
    loaded = ClipSimilarity.from_pretrained(tmp_path / "clip")
    np.testing.assert_allclose(loaded.per_view(pred, gt).numpy(), scores.numpy(), atol=1e-5)


def test_clip_missing_model_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIPModel"):
        ClipSimilarity.from_pretrained(tmp_path / "nowhere")


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_novel_view_folders_split_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    for obj in ("a", "b"):
        for k in range(4):
            img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            _save(tmp_path / "gt" / obj / f"{k:03d}.png", img)
            noisy = img.copy()
            noisy[0, 0] = 255 - noisy[0, 0]
            if not (obj == "b" and k == 3):
                _save(tmp_path / "pred" / obj / f"{k:03d}.png", noisy if k else np.zeros_like(img))
    assert target_views(tmp_path / "gt" / "a", "zero123") == ["001.png", "002.png", "003.png"]
    recs = {r["object"]: r for r in evaluate_view_folders(tmp_path / "pred", tmp_path / "gt", "zero123",
                                                          progress=False)}
    assert recs["a"]["status"] == "ok" and recs["a"]["views"] == 3
    assert recs["a"]["psnr"] > 30  # view 000 (all black) is the input and is not scored
    assert recs["b"]["status"] == "error" and "003.png" in recs["b"]["error"]
    every = evaluate_view_folders(tmp_path / "pred", tmp_path / "gt", "all", objects=["a"], progress=False)
    assert every[0]["views"] == 4 and every[0]["psnr"] < recs["a"]["psnr"]
    assert math.isfinite(every[0]["ssim"])


def test_16bit_grey_image_is_scaled_not_clipped(tmp_path):
    g = np.random.default_rng(0).integers(0, 65536, (8, 16), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    expected = torch.from_numpy(np.round(g / 257.0) / 255.0).float()
    assert img.shape == (3, 8, 16) and torch.allclose(img, expected.expand(3, -1, -1), atol=1.01 / 255)
