"""Vocabulary snapping: stored anchors agree with the encoder; prompts in unseen words are
read as a training caption of the shape they name; --no-snap turns it off."""

from __future__ import annotations

import pytest
import torch

from polydiff.apps.mesh.captions import SHAPE_WORDS
from polydiff.apps.mesh.snapping import (
    ANCHOR_FILE,
    SnappedEncoder,
    _read_anchors,
    anchor_captions,
    bundled_anchor_folder,
    save_anchors,
)
from polydiff.cli import main


class BagOfWords:
    """A deterministic stand-in encoder: the normalised sum of one random vector per word."""

    name, dim = "bag-of-words", 32

    def __call__(self, prompts, batch_size: int = 64):
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        out = []
        for p in prompts:
            v = sum(torch.randn(self.dim, generator=torch.Generator().manual_seed(
                sum(map(ord, w)) * 131 + len(w))) for w in p.lower().split())
            out.append(torch.nn.functional.normalize(v, dim=0))
        return torch.stack(out)


@pytest.fixture(scope="module")
def encoder():
    from polydiff.apps.mesh.text_encoder import TextEncoder

    return TextEncoder(device="cpu")


def test_anchor_captions_cover_the_training_vocabulary_once() -> None:
    from polydiff.apps.mesh.captions import Spec
    from polydiff.apps.mesh.snapping import anchor_specs

    captions = anchor_captions()
    spec_of = dict(zip(captions, anchor_specs()))
    assert spec_of["a tall red mug"] == Spec("mug", "red", "tall")
    assert spec_of["a short jet black seat with a backrest"] == Spec("chair", "black", "squat")
    assert spec_of["an azure cube"] == Spec("box", "blue", None)
    shapes = sum(len(w.train) for w in SHAPE_WORDS.values())
    assert len(captions) == len(set(captions)) == shapes * 22 * 3
    assert "a tall red mug" in captions and "a scarlet donut" in captions
    assert "an orange mug" in captions and "a tall orange mug" in captions  # as trained
    assert not any(c.startswith(("a a", "a e", "a o")) for c in captions)


def test_bundled_anchors_are_the_encoders_embeddings(encoder) -> None:
    stored = _read_anchors(bundled_anchor_folder() / ANCHOR_FILE, encoder)
    assert stored is not None, "the bundled anchors were made by another encoder or vocabulary"
    rows = [0, 500, 2177]
    fresh = encoder([anchor_captions()[i] for i in rows])
    cos = torch.nn.functional.cosine_similarity(stored[rows], fresh, dim=-1)
    assert float(cos.min()) > 0.999


@pytest.mark.parametrize("prompt, kind", [("there is a silver doughnut", "torus"),
                                          ("my spacecraft is lavender", "rocket"),
                                          ("an object: a jade marble", "ball")])
def test_unseen_synonyms_are_read_as_their_shape(encoder, prompt: str, kind: str) -> None:
    snapped = SnappedEncoder(encoder)
    read = snapped.read_as(prompt)[0]
    assert any(read.endswith(" " + word) for word in SHAPE_WORDS[kind].train), read
    assert torch.equal(snapped(prompt), encoder(read))


@pytest.mark.parametrize("prompt, shape, colour", [
    ("there is a crimson beer stein", "mug", "red"),
    ("a render of a tin can painted navy", "cylinder", "black"),
    ("my doughnut is jade", "torus", "green")])
def test_snapping_keeps_to_the_colour_a_prompt_names(encoder, prompt, shape, colour) -> None:
    from polydiff.apps.mesh.colour_names import prompt_colour

    read = SnappedEncoder(encoder).read_as(prompt)[0]
    assert prompt_colour(read) == colour, read
    assert any(read.endswith(" " + word) for word in SHAPE_WORDS[shape].train), read


def test_a_colour_name_narrows_the_anchors_and_leaves_what_the_encoder_reads() -> None:
    """Encoder alone: the nearest anchor to "a navy mug". With colour names: the nearest
    black anchor to "a mug" (the survey name taken out of the text the encoder reads)."""
    from polydiff.apps.mesh.snapping import anchor_specs

    bag = BagOfWords()
    named, free = SnappedEncoder(bag), SnappedEncoder(bag, colour_names=False)

    def sim(text: str) -> torch.Tensor:
        return (torch.nn.functional.normalize(bag(text), dim=-1) @ named.anchors.T)[0]

    black = torch.tensor([s.colour == "black" for s in anchor_specs()])
    captions = anchor_captions()
    assert free.read_as("a navy mug") == [captions[int(sim("a navy mug").argmax())]]
    assert named.read_as("a navy mug") == \
        [captions[int(sim("a mug").masked_fill(~black, -9).argmax())]]
    assert named.read_as("a navy mug") == ["a black mug"]


def test_a_training_caption_is_read_as_itself(encoder) -> None:
    assert SnappedEncoder(encoder).read_as(["a tall red mug", "a blue cube"]) == \
        ["a tall red mug", "a blue cube"]


def test_another_encoder_gets_its_own_anchors(tmp_path, capsys) -> None:
    """Anchors stored by one encoder are not used for another: they are embedded afresh."""
    fake = BagOfWords()
    snapped = SnappedEncoder(fake, folder=tmp_path)  # no file there
    assert "embedding 2178 anchor captions" in capsys.readouterr().err
    assert snapped.read_as("a red mug")[0] == "a red mug"
    save_anchors(tmp_path, fake)
    assert _read_anchors(tmp_path / ANCHOR_FILE, fake) is not None
    SnappedEncoder(fake, folder=tmp_path)
    assert capsys.readouterr().err == ""          # read from the file this time
    fake.name = "another encoder"
    assert _read_anchors(tmp_path / ANCHOR_FILE, fake) is None


def test_generate_names_what_it_read_and_no_snap_turns_it_off(tmp_path, capsys) -> None:
    out = tmp_path / "torus.glb"
    assert main(["mesh", "generate", "there is a silver doughnut", "-o", str(out)]) == 0
    text = capsys.readouterr()
    assert "read as 'a " in text.out + text.err and out.is_file()
    out2 = tmp_path / "literal.glb"
    assert main(["mesh", "generate", "there is a silver doughnut", "--no-snap", "-o",
                 str(out2)]) == 0
    text = capsys.readouterr()
    assert "read as" not in text.out + text.err and out2.is_file()


def test_the_anchor_command_refuses_an_unwritable_folder_in_one_line(tmp_path, capsys) -> None:
    from polydiff.apps.mesh.snapping import main as snapping_main

    blocker = tmp_path / "a file"
    blocker.write_text("")
    assert snapping_main(["-o", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesh snapping: error:") and "\n" not in err
    assert not (blocker / "sub").exists()
