import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from kinema.config import KinemaConfig
from kinema.model import TextEncoder
from kinema.text import PromptTokenizer, load_minilm_into, minilm_dir

MODELS = Path(__file__).resolve().parents[2]
SENTENCES = ["a cat walking through a spring garden", "", "Snow falls on a skier, at night!"]


@pytest.fixture(scope="module")
def minilm():
    cfg = KinemaConfig.kinema_tiny().text
    enc = TextEncoder(cfg).eval()
    load_minilm_into(enc)
    return enc, PromptTokenizer(minilm_dir() / "tokenizer.json", cfg.max_text_tokens)


def test_matches_sentence_transformers_batched(minilm):
    st_mod = pytest.importorskip("sentence_transformers")
    enc, tok = minilm
    ids, mask = tok.batch(SENTENCES)
    with torch.no_grad():
        _, pooled = enc(ids, mask)
    st = st_mod.SentenceTransformer(str(minilm_dir()), device="cpu")
    ref = torch.tensor(st.encode(SENTENCES))
    assert (pooled - ref).abs().max() < 1e-5


def test_tokenizer_overrides_padding_and_truncates_to_max_text_tokens(minilm):
    _, tok = minilm
    assert tok.ids("") == [101, 102]
    ids = tok.ids("word " * 300)
    limit = KinemaConfig.kinema_tiny().text.max_text_tokens
    assert len(ids) == limit and ids[0] == 101 and ids[-1] == 102


def test_whole_captions_fit_in_what_the_model_reads(minilm):
    """Truncation drops a caption's last words, and those carry attributes (style, camera, the
    shot after a cut): every eval prompt and every training caption, cuts included, must fit."""
    from measure.prompts import build_prompts
    from world.caption_lengths import lengths, training_captions

    _, tok = minilm
    limit = KinemaConfig.kinema_tiny().text.max_text_tokens
    texts = [p["prompt"] for p in build_prompts(120, 4, 15)] + training_captions(600, 0.6)[0]
    n = lengths(texts)
    longest = texts[int(n.argmax())]
    assert n.max() <= limit, longest
    assert len(tok.ids(longest)) == n.max()


def test_committed_minilm_fixture_reproduces():
    path = MODELS / "fixtures" / "minilm.safetensors"
    model = MODELS / "kinema-tiny"
    if not path.exists() or not (model / "text-00.safetensors").exists():
        pytest.skip("fixtures not built")
    from kinema.folder import read_model_folder

    _, cfg, state = read_model_folder(model, verify=False)
    enc = TextEncoder(cfg.text).eval()
    enc.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("text.")})
    tok = PromptTokenizer(model / "tokenizer.json", cfg.text.max_text_tokens)
    with safe_open(str(path), "pt") as f:
        sentences = json.loads(f.metadata()["sentences"])
        for k, s in enumerate(sentences):
            assert tok.ids(s) == f.get_tensor(f"ids.{k}").tolist()
            with torch.no_grad():
                tokens, pooled = enc(f.get_tensor(f"ids.{k}")[None].long())
            assert torch.allclose(tokens[0], f.get_tensor(f"tokens.{k}"), atol=1e-5)
            assert torch.allclose(pooled[0], f.get_tensor(f"pooled.{k}"), atol=1e-6)
