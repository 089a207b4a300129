"""The tiny random CLIP fixture of the evaluation tests (a plain module: tests/evaluation is no package, so that
the top-level `evaluation` package is not shadowed, and a second conftest.py would shadow tests/conftest.py)."""
import pytest
import torch


@pytest.fixture
def tiny_clip():
    """(model, processor): a random 1-layer CLIPModel at 32 px and its image processor (no weights needed)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
                max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, processor
