"""Tokenizers: byte-level BPE trained with `tokenizers` for toy runs, any Hugging Face tokenizer dir for real runs.

Both are used through :class:`Tokenizer`, a thin wrapper over ``transformers.PreTrainedTokenizerFast`` that knows
the ChatML special tokens and the MiMo chat format::
    <|im_start|>system\\n<|im_end|>\\n            (empty system prompt by default, as in MiMo's evaluation)
    <|im_start|>user\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n<think>\\n{reasoning}\\n</think>\\n{answer}<|im_end|>\\n

Toy BPE splits digits one by one (as Qwen2's pre-tokenizer does), which a tiny model needs to learn arithmetic.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from mimo.errors import MimoError
from mimo.utils.io import iter_jsonl

EOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK = "<think>"
END_THINK = "</think>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END, THINK, END_THINK]

# Jinja ChatML template saved into tokenizer_config.json, so `AutoTokenizer.apply_chat_template` (and vLLM/SGLang)
# format prompts exactly as `Tokenizer.chat_prompt` does.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- set rest = messages[1:] -%}"
    "{%- else -%}"
    "{{ '<|im_start|>system\\n<|im_end|>\\n' }}"
    "{%- set rest = messages -%}"
    "{%- endif -%}"
    "{%- for m in rest -%}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def format_chat(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """ChatML text of a conversation (the Python twin of :data:`CHAT_TEMPLATE`).

    >>> format_chat([{"role": "user", "content": "1+1?"}])
    '<|im_start|>system\\n<|im_end|>\\n<|im_start|>user\\n1+1?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    out = []
    rest = messages
    if messages and messages[0]["role"] == "system":
        out.append(f"{IM_START}system\n{messages[0]['content']}{IM_END}\n")
        rest = messages[1:]
    else:
        out.append(f"{IM_START}system\n{IM_END}\n")
    for m in rest:
        out.append(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n")
    if add_generation_prompt:
        out.append(f"{IM_START}assistant\n")
    return "".join(out)


def assistant_text(reasoning: str | None, answer: str) -> str:
    """The assistant turn in MiMo's format: ``<think>\\n...\\n</think>\\n`` then the answer."""
    if reasoning is None:
        return answer
    return f"{THINK}\n{reasoning}\n{END_THINK}\n{answer}"


class Tokenizer:
    """Encode/decode plus the ChatML ids; wraps a Hugging Face fast tokenizer loaded from a directory."""

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        vocab = hf_tokenizer.get_vocab()
        missing = [t for t in (IM_START, IM_END) if t not in vocab]
        if missing:
            raise MimoError(f"tokenizer lacks the ChatML special tokens {missing}")
        self.im_start_id = vocab[IM_START]
        self.im_end_id = vocab[IM_END]
        self.eos_id = vocab.get(EOS, self.im_end_id)
        self.think_id = vocab.get(THINK)
        self.end_think_id = vocab.get(END_THINK)
        self.pad_id = self.eos_id

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        from transformers import AutoTokenizer

        path = Path(path)
        if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise MimoError(f"{path}: not a tokenizer directory (no tokenizer.json)")
        return cls(AutoTokenizer.from_pretrained(str(path)))

    def __len__(self) -> int:
        return len(self.hf)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def chat_prompt(self, messages: list[dict] | str) -> list[int]:
        """Token ids of a ChatML prompt ending in the assistant header (a str is one user message)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return self.encode(format_chat(messages, add_generation_prompt=True))

    @property
    def stop_ids(self) -> list[int]:
        """Ids that end a generation: <|im_end|> and <|endoftext|>."""
        return sorted({self.im_end_id, self.eos_id})

    def save(self, path: str | Path) -> None:
        self.hf.save_pretrained(str(path))


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | Path, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE (digits split individually) and save it as a Hugging Face tokenizer directory."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = RawTokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=[IM_START, IM_END, THINK, END_THINK],
    )
    hf.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out_dir))
    return Tokenizer(hf)


def _iter_texts(paths: list[str], field: str) -> Iterator[str]:
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise MimoError(f"{path}: no such file")
        if path.suffix in (".jsonl", ".gz"):
            for i, rec in enumerate(iter_jsonl(path)):
                if field not in rec:
                    raise MimoError(f"{path}: record {i + 1} has no field {field!r}")
                yield rec[field]
        else:
            yield path.read_text(encoding="utf-8")


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mimo tokenizer", description="Train a byte-level BPE tokenizer.")
    parser.add_argument("files", nargs="+", help="text files, or JSONL files (see --field)")
    parser.add_argument("--out", required=True, help="output tokenizer directory")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--field", default="text", help="JSONL field holding the text")
    args = parser.parse_args(argv)
    tok = train_bpe(_iter_texts(args.files, args.field), args.vocab_size, args.out)
    print(json.dumps({"out": args.out, "vocab_size": tok.vocab_size}))
    return 0
