"""The training NeuS renderer: inverse-CDF sampling, alpha/weights on an analytic SDF, empty volumes, shapes."""
import torch

from reconstruction.model import ReconstructionModel
from reconstruction.sparse_sdf_network import ConditionalVolume
from reconstruction.training import render


def test_sample_pdf_follows_the_weights():
    bins = torch.linspace(0, 1, 11).expand(2, 11)
    uniform = render.sample_pdf(bins, torch.ones(2, 10), 5)
    assert torch.allclose(uniform[0], torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]), atol=1e-3)
    peaked = torch.zeros(2, 10)
    peaked[:, 6] = 1.0
    samples = render.sample_pdf(bins, peaked, 8)
    assert ((samples > 0.6) & (samples < 0.7)).float().mean() > 0.9
    assert torch.all(samples[:, 1:] >= samples[:, :-1])


def test_weights_peak_at_the_zero_crossing_of_a_plane_sdf():
    z = torch.linspace(0, 2, 201)[None]
    sdf = 1.0 - z  # surface at distance 1 along the ray, SDF positive in front of it
    dist = z[:, 1:] - z[:, :-1]
    mid_sdf = (sdf[:, 1:] + sdf[:, :-1]) / 2
    alpha = render._alpha_from_sdf(mid_sdf + dist / 2, mid_sdf - dist / 2, 200.0).clamp(0, 1)
    w = render._transmittance_weights(alpha)
    peak = (z[:, :-1] + dist / 2)[0, w[0].argmax()]
    assert abs(peak.item() - 1.0) < 0.02
    assert abs(w.sum().item() - 1.0) < 1e-3


def _empty_volume(res=8):
    return ConditionalVolume(torch.zeros(16, res, res, res), torch.zeros(1, res, res, res),
                             torch.zeros(0, 3, dtype=torch.long))


def test_rays_through_an_empty_volume_are_white():
    torch.manual_seed(0)
    model = ReconstructionModel()
    v = 3
    out = render.render_rays(
        model, _empty_volume(), torch.rand(v, 56, 8, 8), torch.rand(v, 3, 8, 8), torch.eye(4).expand(v, 4, 4),
        torch.eye(3).expand(v, 3, 3), torch.zeros(5, 3), torch.nn.functional.normalize(torch.randn(5, 3), dim=-1),
        0.1, 1.5, render.RenderSettings(n_samples=8, n_importance=8, up_sample_steps=2))
    assert torch.allclose(out.color, torch.ones(5, 3)) and torch.all(out.weight_sum == 0)
    assert out.sdf.shape == (5, 16) and not out.inside.any() and not out.ray_valid.any()
    assert torch.all(out.sdf == render.OUTSIDE_SDF)


def test_full_volume_renders_colours_and_gradients():
    torch.manual_seed(0)
    model = ReconstructionModel()
    res = 8
    vol = ConditionalVolume(torch.randn(16, res, res, res) * 0.1, torch.ones(1, res, res, res),
                            torch.zeros(0, 3, dtype=torch.long))
    v = 4
    w2c = torch.eye(4).repeat(v, 1, 1)
    w2c[:, 2, 3] = 2.0  # cameras 2 units behind the volume centre, looking along +z
    k = torch.tensor([[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]).expand(v, 3, 3)
    origins = torch.tensor([[0.0, 0.0, -2.0]]).expand(6, 3)
    dirs = torch.nn.functional.normalize(torch.randn(6, 3) * 0.05 + torch.tensor([0, 0, 1.0]), dim=-1)
    out = render.render_rays(model, vol, torch.rand(v, 56, 8, 8), torch.rand(v, 3, 8, 8), w2c, k, origins, dirs,
                             1.0, 3.0, render.RenderSettings(n_samples=16, n_importance=8, up_sample_steps=2))
    assert out.inside.any() and out.gradients.requires_grad
    assert torch.all((out.color >= 0) & (out.color <= 1)) and torch.all(out.weight_sum <= 1 + 1e-5)
    (out.color.sum() + out.gradients.norm(dim=-1).sum()).backward()
    assert model.sdf_network_lod0.sdf_layer.lin0.weight_v.grad is not None
