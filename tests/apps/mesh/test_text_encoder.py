"""Offline sentence encoder: the bundled MiniLM, a CLIP folder, and bad folders."""

import json

import pytest
import torch

from polydiff.apps.mesh.text_encoder import TextEncoder
from polydiff.runtime import UserError


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_bundled_minilm_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    prompts = ["a red mug", "a tall blue rocket with fins", "torus"]
    ours = encoder(prompts)
    assert ours.shape == (3, 384) and ours.dtype == torch.float32 and encoder.dim == 384
    ref = SentenceTransformer(str(encoder.folder), device="cpu").encode(
        prompts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=0)


def test_paraphrases_lie_closer_than_other_shapes(encoder):
    e = encoder(["a red mug", "a crimson coffee cup", "a green traffic cone"])
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1


def test_cache_and_order(encoder):
    a = encoder(["b box", "a ball", "b box"])
    torch.testing.assert_close(a[0], a[2])
    assert encoder._cache["a ball"] is not None
    torch.testing.assert_close(encoder("a ball")[0], a[1])
    with pytest.raises(UserError, match="empty prompt"):
        encoder(["  "])


def test_clip_text_encoder_folder(tmp_path, encoder):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32,
                            intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                            projection_dim=16, max_position_embeddings=80,
                            eos_token_id=encoder.tokenizer.sep_token_id)  # pooled at [SEP]
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(tmp_path, safe_serialization=True)
    encoder.tokenizer.save_pretrained(tmp_path)
    clip = TextEncoder(tmp_path)
    assert clip.is_clip and clip.dim == 16
    e = clip(["a red mug", "a blue ball"])
    assert e.shape == (2, 16)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    assert not torch.allclose(e[0], e[1])


def test_unloadable_folders_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        TextEncoder(tmp_path / "missing")
    with pytest.raises(UserError, match="no config.json"):
        TextEncoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    with pytest.raises(UserError) as err:
        TextEncoder(tmp_path)
    assert "\n" not in str(err.value) and "cannot load text encoder" in str(err.value)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        TextEncoder(tmp_path)


def test_embedding_table_round_trip(tmp_path, encoder):
    """A table made by the encoder gives exactly its embeddings, in the order asked, and
    refuses prompts it does not hold and files that are not tables with one-line errors."""
    from polydiff.apps.mesh.text_encoder import EmbeddingTable

    prompts = ["a red cube", "a small blue sphere", "a green torus"]
    EmbeddingTable.save(tmp_path / "t.safetensors", encoder, prompts)
    table = EmbeddingTable(tmp_path / "t.safetensors")
    assert table.dim == encoder.dim and table.name == encoder.name
    asked = [prompts[2], prompts[0]]
    torch.testing.assert_close(table(asked), encoder(asked), rtol=0, atol=0)
    with pytest.raises(UserError, match="not in the embedding table"):
        table("a yellow cone")
    (tmp_path / "bad.safetensors").write_bytes(b"not a table")
    with pytest.raises(UserError, match="not a prompt embedding table"):
        EmbeddingTable(tmp_path / "bad.safetensors")
