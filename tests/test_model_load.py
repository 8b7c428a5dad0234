"""Loading a model directory: weights present and the tokenizer the model's own, else one line and exit 2."""

from __future__ import annotations

import random
import shutil

import pytest

from mimo.errors import MimoError
from mimo.model.io import check_tokenizer_fits, load_model_dir
from mimo.tokenizer import train_bpe
from test_run_dir import SMALL, checksums, mimo


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain") / "run"
    r = mimo("pretrain", "--out_dir", str(run), *SMALL, "--save_every", "0", cwd=run.parent)
    assert r.returncode == 0, r.stderr
    return run / "final"


COMMANDS = {
    "generate": lambda d, out: ["generate", "--model", str(d), "--prompt", "1+1=", "--max_new_tokens", "2"],
    "sft": lambda d, out: ["sft", "--init_from", str(d), "--out_dir", str(out), "--threads", "1"],
    "eval": lambda d, out: ["eval", "--model", str(d), "--benchmarks", "toy_math", "--out", str(out),
                            "--progress", "false"],
    "serve": lambda d, out: ["serve", "--model", str(d), "--port", "0"],
    "rl": lambda d, out: ["rl", "--init_from", str(d), "--out_dir", str(out), "--threads", "1"],
}


def _expect_one_line(tmp_path, model: object, message: str, commands=COMMANDS) -> None:
    for name, argv in commands.items():
        before = checksums(tmp_path)
        r = mimo(*argv(model, tmp_path / f"out_{name}"), cwd=tmp_path)
        assert r.returncode == 2, (name, r.stderr[-2000:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (name, lines[-5:])
        after = checksums(tmp_path)
        assert {k: after.get(k) for k in before} == before, name  # no existing file changed


def test_model_dir_without_weights(model_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").unlink()
    _expect_one_line(tmp_path, broken, f"{broken}: no model weights (model.safetensors is missing)")


def _with_tokenizer(model_dir, tmp_path, vocab: int):
    swapped = tmp_path / f"model_{vocab}"
    shutil.copytree(model_dir, swapped)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(400)]
    texts = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(400)]
    tok = train_bpe(texts, vocab, tmp_path / f"tok_{vocab}", min_frequency=1)
    tok.save(swapped)
    return swapped, tok.vocab_size


def test_tokenizer_larger_than_the_vocabulary(model_dir, tmp_path):
    swapped, n = _with_tokenizer(model_dir, tmp_path, 700)
    assert n > 300
    with pytest.raises(MimoError, match=rf"tokenizer has {n} tokens but the model's vocabulary has 300 rows"):
        load_model_dir(swapped)
    _expect_one_line(tmp_path, swapped, "ids >= 300 would index past the embedding",
                     {k: COMMANDS[k] for k in ("generate", "sft", "eval")})


def test_tokenizer_much_smaller_than_the_vocabulary(model_dir):
    # a byte-level BPE has >= 256 tokens, so the small model's 300 rows cannot show the gap: check its config
    # grown to 512 rows (the shapes check then never runs: the tokenizer check comes first)
    from types import SimpleNamespace

    model, tok = load_model_dir(model_dir)
    config = SimpleNamespace(vocab_size=512, eos_token_id=model.config.eos_token_id)
    with pytest.raises(MimoError, match=rf"tokenizer has {tok.vocab_size} tokens but the model's vocabulary has 512 "
                                        r"rows \(more than 127 of padding\): not this model's tokenizer"):
        check_tokenizer_fits(tok, config, model_dir)
    check_tokenizer_fits(tok, SimpleNamespace(vocab_size=tok.vocab_size + 127, eos_token_id=None), model_dir)
    other_stop = SimpleNamespace(vocab_size=tok.vocab_size, eos_token_id=[tok.im_end_id + 1])
    with pytest.raises(MimoError, match="the model stops on"):
        check_tokenizer_fits(tok, other_stop, model_dir)


def test_the_model_s_own_tokenizer_loads(model_dir):
    model, tok = load_model_dir(model_dir)
    assert tok is not None and tok.vocab_size <= model.config.vocab_size
