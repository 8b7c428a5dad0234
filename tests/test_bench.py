"""``benchmarks/specdec.py --json FILE`` writes the keys the demo and the lead's checks read (tiny smoke run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_specdec_script_writes_the_json_contract(tmp_path, tiny_model):
    from mimo.model.io import save_model_dir
    from mimo.tokenizer import train_bpe

    tok = train_bpe(["Question: Compute 12 + 3. Answer: 12 + 3 = 15"] * 30, 300, tmp_path / "tok")
    save_model_dir(tmp_path / "m", tiny_model(num_nextn_predict_layers=2, vocab_size=tok.vocab_size), tok)
    spec = importlib.util.spec_from_file_location("specdec_script", ROOT / "benchmarks" / "specdec.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        assert script.main(["--model", str(tmp_path / "m"), "--json", str(tmp_path / "r.json"), "--prompts", "2",
                            "--max-new-tokens", "6", "--repeats", "1", "--no-peers", "--depths", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["acceptance"]) == 2 and all(0 <= a <= 1 for a in res["acceptance"])
    for key in ("tokens_per_s_plain", "tokens_per_s_speculative", "speedup"):
        assert isinstance(res[key], float) and res[key] > 0
    assert res["greedy_identical"] is True
    assert {r["method"] for r in res["rows"]} == {"plain", "mtp-speculative", "mtp-speculative, 1 draft"}


def test_the_livecodebench_style_baselines_of_the_judge_benchmark_grade_right(monkeypatch):
    """The baselines `benchmarks/judge.py` measures mimo against pass what is right and fail what is wrong (a
    baseline that failed everything would look fast)."""
    import sys

    spec = importlib.util.spec_from_file_location("judge_script", ROOT / "benchmarks" / "judge.py")
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "judge_script", script)  # its process pool pickles functions by module
    spec.loader.exec_module(script)
    tests = [{"testtype": "stdin", "input": f"{a} {b}\n", "output": f"{a + b}\n"} for a, b in ((1, 2), (5, 7))]
    right = "a, b = map(int, input().split())\nprint(a + b)\n"
    main_guarded = "def main():\n    a, b = map(int, input().split())\n    print(a + b)\nif __name__ == '__main__':\n" \
                   "    main()\n"
    wrong = "a, b = map(int, input().split())\nprint(a - b)\n"
    check = "def check(f):\n    assert f(2) == 4\ncheck(double)\n"
    samples = [{"source": right, "tests": tests}, {"source": main_guarded, "tests": tests},
               {"source": wrong, "tests": tests},
               {"source": "def double(x):\n    return 2 * x\n" + check, "tests": [None]},
               {"source": "def double(x):\n    return x\n" + check, "tests": [None]}]
    for runner in (script.lcb_style, script.lcb_lean):
        _, passed = runner(samples, workers=2)
        assert passed == 2 + 2 + 0 + 1 + 0, runner.__name__
