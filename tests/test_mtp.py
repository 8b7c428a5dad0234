"""``mimo train-mtp``: layers copied from MTP layer 1, only the new ones train, the saved model has k layers, the
frozen parts are bit-identical, the new layers' loss falls; ``mimo chat`` runs a multi-turn session."""

from __future__ import annotations

import io
import json

import pytest
import torch

from mimo.config import resolve_config
from mimo.train.mtp import MtpConfig, grow_mtp_layers
from mimo.train.mtp import main as mtp_main


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny 'pretrained' model directory (random weights, toy BPE tokenizer, 1 MTP layer)."""
    from mimo.data.toy import ToyCorpus, source_documents
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.tokenizer import train_bpe

    d = tmp_path_factory.mktemp("pre")
    toy = ToyCorpus(docs_per_source=100)
    texts = [t for src in ("text", "math_cot", "synthetic") for t in source_documents(toy, src)]
    tok = train_bpe(texts, 300, d / "tok")
    torch.manual_seed(0)
    model = MiMoForCausalLM(ModelSpec(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      num_nextn_predict_layers=1).to_hf(eos_token_id=tok.stop_ids))
    return save_model_dir(d / "final", model, tok)


def test_grow_copies_layer_one_and_freezes_the_rest(tiny_model):
    base = tiny_model(num_nextn_predict_layers=1)
    model, params = grow_mtp_layers(base, 3)
    assert model.num_mtp_layers == 3 and model.config.num_nextn_predict_layers == 3
    src = base.model.mtp_layers[0].state_dict()
    for i in (1, 2):
        for name, t in model.model.mtp_layers[i].state_dict().items():
            assert torch.equal(t, src[name])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.mtp_layers.1.", "model.mtp_layers.2.")) for n in trainable)
    assert {id(p) for p in params} == {id(p) for n, p in model.named_parameters() if p.requires_grad}
    x = torch.randint(0, 64, (2, 9))
    with torch.no_grad():  # the main path is untouched
        assert torch.equal(model(input_ids=x).logits, base(input_ids=x).logits)


@pytest.mark.parametrize("targets", ["data", "model"])
def test_train_mtp_trains_new_layers_only_and_saves_k(pretrained, tmp_path, targets):
    from mimo.model.io import load_model_dir

    cfg = resolve_config(MtpConfig, "mtp", overrides={
        "init_from": str(pretrained), "out_dir": str(tmp_path), "num_mtp_layers": "3", "targets": targets,
        "toy.docs_per_source": "200", "toy.stage_tokens": "[30000]", "steps": "12", "seq_len": "64",
        "batch_size": "8", "micro_batch_size": "4", "lr": "0.01", "warmup_steps": "2", "decay_steps": "4",
        "eval_every": "0", "eval_batches": "1", "accept_prompts": "2", "save_every": "6", "log_every": "100",
        "threads": "1"})
    mtp_main(cfg)
    base, _ = load_model_dir(pretrained)
    out, tok = load_model_dir(tmp_path / "final")
    assert tok is not None and out.num_mtp_layers == 3
    assert json.loads((tmp_path / "final" / "config.json").read_text())["num_nextn_predict_layers"] == 3
    new, old = out.state_dict(), base.state_dict()
    for name, t in old.items():  # main model and MTP layer 1: bit-identical
        assert torch.equal(new[name], t), name
    assert not torch.equal(new["model.mtp_layers.1.input_proj.weight"], old["model.mtp_layers.0.input_proj.weight"])
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["mtp2_loss"] < recs[0]["mtp2_loss"] and "mtp1_loss" not in recs[0]
    assert {"eval_mtp3_acc", "accept1", "accept3"} <= set(recs[-1])
    assert (tmp_path / "checkpoints" / "latest").is_file()


def test_train_mtp_bad_input(pretrained, tmp_path):
    from mimo.errors import MimoError

    with pytest.raises(MimoError, match="num_mtp_layers must be >= 2"):
        mtp_main(resolve_config(MtpConfig, "mtp", overrides={"init_from": str(pretrained), "num_mtp_layers": "1",
                                                               "out_dir": str(tmp_path)}))
    with pytest.raises(MimoError, match="not a model directory"):
        mtp_main(resolve_config(MtpConfig, "mtp", overrides={"init_from": str(tmp_path / "nope"),
                                                               "out_dir": str(tmp_path)}))


def test_chat_multi_turn_session(pretrained):
    from mimo.infer.chat import ChatConfig, run
    from mimo.model.io import load_model_dir

    model, tok = load_model_dir(pretrained)
    model.eval()
    stdin = io.StringIO("Compute 2 + 3.\n\n/stats\nAnd 4 + 5?\n/reset\nHi\n/exit\nnever read\n")
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run(model, tok, ChatConfig(max_new_tokens=12), stdin, stdout, stderr) == 0
    err = stderr.getvalue()
    assert err.count("tokens per verify") == 4  # three replies and /stats; "/exit" ended the session
    assert "new conversation" in err and "acceptance per MTP layer" in err
    # turn 1's reply is exactly what generate() gives for the same ChatML prompt
    from mimo.infer.engine import generate

    ids = generate(model, [tok.chat_prompt("Compute 2 + 3.")], 12, stop_ids=tok.stop_ids)[0]
    assert stdout.getvalue().startswith(tok.decode([t for t in ids if t not in tok.stop_ids]) + "\n")
