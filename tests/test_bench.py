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
                            "--max-new-tokens", "6", "--repeats", "1", "--no-peers", "--depths", "1",
                            "--batches", "1,3", "--save-depths", "--no-vllm"]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["acceptance"]) == 2 and all(0 <= a <= 1 for a in res["acceptance"])
    for key in ("tokens_per_s_plain", "tokens_per_s_speculative", "speedup"):
        assert isinstance(res[key], float) and res[key] > 0
    assert res["greedy_identical"] is True
    # the row format: per batch size x temperature, plain and each draft depth
    keys = {"engine", "mode", "temperature", "batch", "draft_layers", "tokens_per_s", "acceptance"}
    assert all(keys <= set(r) for r in res["rows"])
    assert sorted((r["batch"], r["temperature"], r["mode"], r["draft_layers"]) for r in res["rows"]) == sorted(
        (b, t, m, d) for b in (1, 3) for t in (0.0, 0.6) for m, d in (("plain", 0), ("speculative", 1),
                                                                      ("speculative", 2)))
    assert all(len(r["acceptance"]) == r["draft_layers"] and r["engine"] == "mimo" for r in res["rows"])
    # the best depth per batch size, saved into the model's config, which generate(num_draft=None) then follows
    table = res["auto_depths"]["0.6"]
    assert [b for b, _ in table] == [2, 1 << 30] and all(d in (0, 1, 2) for _, d in table)
    best = {b: max((r for r in res["rows"] if r["batch"] == b and r["temperature"] == 0.6),
                   key=lambda r: r["tokens_per_s"])["draft_layers"] for b in (1, 3)}
    assert [d for _, d in table] == [best[1], best[3]]
    from mimo.infer.speculative import auto_num_draft
    from mimo.model.io import load_model_dir

    model, _ = load_model_dir(tmp_path / "m")
    assert [auto_num_draft(model, b) for b in (1, 3, 100)] == [best[1], best[3], best[3]]


def test_best_depths_reads_the_fastest_depth_per_batch_size():
    spec = importlib.util.spec_from_file_location("specdec_script", ROOT / "benchmarks" / "specdec.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = [{"engine": e, "temperature": 0.6, "batch": b, "draft_layers": d, "tokens_per_s": v}
            for e, b, d, v in (("mimo", 1, 0, 100), ("mimo", 1, 3, 200), ("mimo", 1, 2, 190), ("mimo", 16, 0, 900),
                               ("mimo", 16, 1, 950), ("mimo", 64, 0, 2000), ("mimo", 64, 1, 1500),
                               ("vllm", 64, 1, 9999))]
    assert script.best_depths(rows, 0.6) == [[15, 3], [63, 1], [1 << 30, 0]]
    assert script.best_depths(rows, 0.0) == []


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
