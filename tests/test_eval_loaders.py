"""Benchmark loaders: the shared files load exactly; LiveCodeBench and GPQA formats from small files written here;
malformed input is a one-line error naming the file and line."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from eval_data import GPQA_ROWS, lcb_private, lcb_record, write_gpqa, write_lcb
from mimo.errors import MimoError
from mimo.eval import LoadOptions, load_benchmark
from mimo.eval.loaders import MATH_INSTRUCTION, decode_lcb_tests


def test_shared_files_load_exactly(shared_data):
    opts = LoadOptions(data=str(shared_data))
    expected = {"math500": (500, 1, "math"), "aime24": (30, 32, "math"), "aime25": (30, 32, "math"),
                "humaneval": (164, 1, "humaneval")}
    for name, (size, samples, grader) in expected.items():
        b = load_benchmark(name, opts)
        assert (len(b), b.samples, b.max_new_tokens) == (size, samples, 32768), name
        assert {it.grader for it in b.items} == {grader}
        assert len({it.id for it in b.items}) == size
    math500 = load_benchmark("math500", opts)
    first = math500.items[0]
    assert first.id == "test/precalculus/807.json"
    assert first.reference == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.prompt.endswith(MATH_INSTRUCTION)
    aime25 = load_benchmark("aime25", opts)
    assert aime25.items[0].reference == "70" and aime25.items[0].prompt.count(MATH_INSTRUCTION) == 1
    aime24 = load_benchmark("aime24", opts)
    assert sorted(int(it.reference) for it in aime24.items)[:2] == [23, 25]
    he = load_benchmark("humaneval", opts)
    assert he.items[0].id == "HumanEval/0" and he.items[0].reference["tests"][0]["entry_point"] == \
        "has_close_elements"
    assert len(load_benchmark("math500", LoadOptions(data=str(shared_data), max_problems=7))) == 7


def test_livecodebench_lite_dates_tests_and_function_names(tmp_path):
    folder = write_lcb(tmp_path)
    v5 = load_benchmark("lcb_v5", LoadOptions(data=str(folder)))
    v6 = load_benchmark("lcb_v6", LoadOptions(data=str(folder)))
    assert [it.id for it in v5.items] == ["abc001_a", "3100"]  # the 2023 problem is out; the duplicate read once
    assert [it.id for it in v6.items] == ["abc390_b"]
    assert v5.samples == v6.samples == 8
    stdin, func = v5.items
    assert stdin.grader == "lcb" and len(stdin.reference["tests"]) == 3  # public + decoded private
    assert stdin.reference["tests"][1] == {"testtype": "stdin", "input": "3\n1 1 1\n", "output": "9\n"}
    assert func.reference["fn_name"] == "maxSum"
    assert all(t["testtype"] == "functional" and t["fn_name"] == "maxSum" for t in func.reference["tests"])
    assert "Read the inputs from stdin" in stdin.prompt and "starter code" in func.prompt
    assert "def maxSum(self" in func.prompt


def test_lcb_private_tests_refuse_pickled_objects():
    tests = [{"input": "1", "output": "1", "testtype": "stdin"}]
    assert decode_lcb_tests(lcb_private(tests), "f:1") == tests
    assert decode_lcb_tests(json.dumps(tests), "f:1") == tests

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(MimoError, match="f:7: private test cases"):
        decode_lcb_tests(hostile, "f:7")


def test_lcb_prompt_only_files_are_refused(shared_data):
    with pytest.raises(MimoError, match="no test cases"):
        load_benchmark("lcb_v5", LoadOptions(data=str(shared_data / "livecodebench_v5_prompts_qwq.jsonl")))


def test_gpqa_choices_shuffled_with_a_fixed_seed(tmp_path):
    path = write_gpqa(tmp_path / "gpqa_diamond.csv")
    a = load_benchmark("gpqa_diamond", LoadOptions(data=str(tmp_path)))
    b = load_benchmark("gpqa_diamond", LoadOptions(data=str(path)))
    assert [(it.prompt, it.reference) for it in a.items] == [(it.prompt, it.reference) for it in b.items]
    assert a.samples == 8 and {it.grader for it in a.items} == {"choice"}
    for it, (rid, _q, good, *_bad) in zip(a.items, GPQA_ROWS):
        assert it.id == rid
        assert f"({it.reference}) {good}\n" in it.prompt + "\n"  # the gold letter labels the correct answer
    seeds = [tuple(it.reference for it in load_benchmark("gpqa_diamond", LoadOptions(data=str(path), gpqa_seed=s))
                   .items) for s in range(6)]
    assert len(set(seeds)) > 1  # the order depends on the seed, not on the file


def test_toy_benchmarks_are_held_out_and_sized():
    opts = LoadOptions()
    opts.toy.size, opts.toy.samples = 12, 3
    m = load_benchmark("toy_math", opts)
    c = load_benchmark("toy_code", opts)
    assert len(m) == len(c) == 12 and m.samples == 3 and m.max_new_tokens == 256
    assert m.items[0].grader == "math" and c.items[0].grader == "code"
    assert c.items[0].reference["fn_name"] and c.items[0].reference["tests"]


def test_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "math.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": oops}\n')
    with pytest.raises(MimoError, match=r"math\.jsonl:2: malformed JSON"):
        load_benchmark("math500", LoadOptions(data=str(bad)))
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?"}\n')
    with pytest.raises(MimoError, match=r"math\.jsonl:2: record has none of the fields \['answer'"):
        load_benchmark("aime24", LoadOptions(data=str(bad)))
    with pytest.raises(MimoError, match="no such file or folder"):
        load_benchmark("math500", LoadOptions(data=str(tmp_path / "missing.jsonl")))
    with pytest.raises(MimoError, match="gpqa_diamond: no file matching"):
        load_benchmark("gpqa_diamond", LoadOptions(data=str(tmp_path)))
    with pytest.raises(MimoError, match="unknown benchmark 'mmlu'"):
        load_benchmark("mmlu")
    lcb = tmp_path / "lcb.jsonl"
    rec = lcb_record("3100", "2024-09-15T00:00:00", "functional")
    rec["metadata"] = "{}"
    lcb.write_text(json.dumps(lcb_record("abc001_a", "2024-08-03T00:00:00", "stdin")) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(MimoError, match=r"lcb\.jsonl:2: functional test without metadata\.func_name"):
        load_benchmark("lcb_v5", LoadOptions(data=str(lcb)))
    csv_bad = tmp_path / "g.csv"
    csv_bad.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2\nq,a,b,c\n")
    with pytest.raises(MimoError, match=r"g\.csv:2: record has none of the fields \['Incorrect Answer 3'"):
        load_benchmark("gpqa_diamond", LoadOptions(data=str(csv_bad)))


def test_decontamination_indexes_the_eval_only_benchmarks(tmp_path):
    """`mimo data decontaminate --benchmarks gpqa_diamond,lcb_v5 --data_dir DIR`: the 16-gram rule against the
    benchmarks whose files only `mimo eval` reads (GPQA csv, LiveCodeBench lite)."""
    from mimo.data.decontam import DecontamConfig, NgramIndex
    from mimo.data.decontam import main as decontaminate

    write_gpqa(tmp_path / "gpqa_diamond.csv")
    write_lcb(tmp_path)
    long_q = ("In a carefully controlled laboratory experiment with cold atoms in an optical lattice the measured "
              "tunnelling rate doubles when the lattice depth is halved so what is the effective mass ratio")
    with open(tmp_path / "gpqa_diamond.csv", "a") as f:
        f.write(f'"{long_q}","{long_q}","two","one","four","eight","rec99","physics"\n')
    index = NgramIndex.from_benchmarks(["gpqa_diamond", "lcb_v5"], data_dir=tmp_path)
    assert any(i.startswith("gpqa_diamond:") for i in index.matches(f"Homework: {long_q}? Answer below."))
    assert not index.contaminated("A different question about cold atoms and optical lattices entirely.")
    rows = tmp_path / "sft.jsonl"
    rows.write_text(json.dumps({"text": long_q}) + "\n" + json.dumps({"text": "unrelated text"}) + "\n")
    report = decontaminate(DecontamConfig(input=str(rows), output=str(tmp_path / "clean.jsonl"), benchmarks=[
        "gpqa_diamond"], data_dir=str(tmp_path)))
    assert (report["kept"], report["dropped"]) == (1, 1)
