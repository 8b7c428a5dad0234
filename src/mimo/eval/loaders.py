"""Benchmark files in their public formats -> evaluation :class:`~mimo.eval.benchmarks.Item` lists.

Nothing is downloaded: a benchmark is read from a file, from a folder holding one of its usual file names (the
shared evaluation-data folder, a Hugging Face hub snapshot such as
``~/.cache/huggingface/hub/datasets--livecodebench--code_generation_lite/snapshots/<rev>/``), or from a
``datasets.save_to_disk`` folder (needs the ``datasets`` package).  Formats:

* MATH-500 -- prm800k ``math_splits/test.jsonl`` (``problem``, ``answer``, ``unique_id``), or HuggingFaceH4/MATH-500.
* AIME -- Qwen2.5-Math ``aime24/test.jsonl`` (``id``, ``problem``, ``answer``) and QwQ ``aime25.jsonl`` (``prompt``
  already ending in the boxed-answer instruction, ``answer``); ids are the record's ``id`` or its line number.
* LiveCodeBench ``code_generation_lite`` -- ``question_content``, ``starter_code``, ``contest_date``,
  ``public_test_cases`` (JSON) and ``private_test_cases`` (JSON, or base64(zlib(pickle(JSON string))) -- unpickled
  with a loader that builds strings only), ``metadata`` (JSON with ``func_name`` for LeetCode problems); filtered by
  contest date (v5 = 2024-08-01 .. 2025-02-01, v6 = 2025-02-01 .. 2025-05-01, start inclusive, end exclusive).
* GPQA -- the csv (or jsonl) with ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``; the four choices are
  shuffled per question with a fixed seed (``random.Random(f"{seed}:{record id}")``), so every run and every model
  sees the same order.
* HumanEval -- ``HumanEval.jsonl(.gz)`` (``task_id``, ``prompt``, ``entry_point``, ``test``).

A missing file or a malformed record raises :class:`~mimo.errors.MimoError` naming the file and line.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import pickle
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

from mimo.errors import MimoError
from mimo.utils.io import iter_jsonl

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_LETTERS = "ABCD"

# --------------------------------------------------------------------------------------------------- reading


def find_files(name: str, patterns: tuple[str, ...], data: str | Path | None, hint: str = "") -> list[Path]:
    """The file(s) of benchmark ``name``: ``data`` itself when it is a file (or a ``save_to_disk`` folder), else the
    files matching the first of the glob ``patterns`` (relative to the folder ``data``) that matches anything."""
    if data is None or str(data) == "":
        raise MimoError(f"{name}: no data given and no evaluation-data folder found (set --data or MIMO_EVAL_DATA)")
    root = Path(data)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise MimoError(f"{name}: {root}: no such file or folder")
    if (root / "dataset_info.json").is_file() or (root / "state.json").is_file():
        return [root]  # a datasets.save_to_disk folder
    for pattern in patterns:
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        if found:
            return found
    raise MimoError(f"{name}: no file matching {', '.join(patterns)} in {root}"
                    f"{' (' + hint + ')' if hint else ''}; pass the file with --data_files")


def read_records(path: Path) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for every record of a jsonl(.gz) / json / csv file or a ``save_to_disk`` folder;
    ``where`` is ``file:line`` (``file:row`` for csv)."""
    if path.is_dir():
        try:
            import datasets
        except ImportError:
            raise MimoError(f"{path}: a datasets folder needs the `datasets` package (pip install datasets)") from None
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["test"] if "test" in ds else next(iter(ds.values()))
        for i, rec in enumerate(ds, start=1):
            yield f"{path}:{i}", dict(rec)
        return
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        for line, rec in iter_jsonl(path, with_lineno=True):
            yield f"{path}:{line}", rec
    elif name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise MimoError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise MimoError(f"{path}: expected a JSON list of objects")
        for i, rec in enumerate(data, start=1):
            yield f"{path}:item {i}", rec
    elif name.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for rec in reader:
                yield f"{path}:{reader.line_num}", rec
    else:
        raise MimoError(f"{path}: unsupported format (expected .jsonl, .jsonl.gz, .json or .csv)")


def _field(rec: dict, where: str, *keys: str, kind: type | tuple = str):
    for key in keys:
        value = rec.get(key)
        if value is not None and value != "":
            if not isinstance(value, kind):
                raise MimoError(f"{where}: field {key!r} should be {getattr(kind, '__name__', kind)}, "
                                f"got {type(value).__name__}")
            return value
    raise MimoError(f"{where}: record has none of the fields {list(keys)}")


def with_instruction(problem: str) -> str:
    """A math problem with MiMo's/Qwen's boxed-answer instruction appended (once)."""
    problem = problem.strip()
    return problem if MATH_INSTRUCTION in problem else f"{problem}\n{MATH_INSTRUCTION}"


# ------------------------------------------------------------------------------------------------ the formats


def math_items(path: Path, prefix: str) -> list[dict]:
    """MATH-500 / AIME records -> ``{id, prompt, reference}``."""
    out, seen = [], set()
    for i, (where, rec) in enumerate(read_records(path)):
        text = _field(rec, where, "problem", "question", "prompt", "Problem")
        answer = _field(rec, where, "answer", "Answer", "expected_answer", kind=(str, int, float))
        pid = str(rec.get("unique_id") or rec.get("id") or rec.get("ID") or f"{prefix}/{i}")
        if pid in seen:
            raise MimoError(f"{where}: duplicate problem id {pid!r}")
        seen.add(pid)
        out.append({"id": pid, "prompt": with_instruction(text), "reference": str(answer)})
    return out


def humaneval_items(path: Path) -> list[dict]:
    out = []
    for where, rec in read_records(path):
        prompt = _field(rec, where, "prompt")
        entry = _field(rec, where, "entry_point")
        test = _field(rec, where, "test")
        out.append({"id": _field(rec, where, "task_id"), "prompt": humaneval_prompt(prompt),
                    "reference": {"prompt": prompt, "tests": [{"testtype": "assert", "test": test,
                                                               "entry_point": entry, "prelude": prompt}]}})
    return out


def humaneval_prompt(code_prompt: str) -> str:
    return ("Complete the following Python function. Answer with the complete function (with its imports) in a "
            f"```python block.\n\n```python\n{code_prompt.rstrip()}\n```")


def gpqa_items(path: Path, seed: int) -> list[dict]:
    out = []
    for i, (where, rec) in enumerate(read_records(path)):
        question = _field(rec, where, "Question", "question")
        correct = _field(rec, where, "Correct Answer", "correct_answer").strip()
        wrong = [_field(rec, where, f"Incorrect Answer {j}", f"incorrect_answer_{j}").strip() for j in (1, 2, 3)]
        pid = str(rec.get("Record ID") or rec.get("id") or f"gpqa/{i}")
        choices = [correct, *wrong]
        random.Random(f"{seed}:{pid}").shuffle(choices)
        letter = CHOICE_LETTERS[choices.index(correct)]
        out.append({"id": pid, "prompt": gpqa_prompt(question.strip(), choices), "reference": letter})
    return out


def gpqa_prompt(question: str, choices: list[str]) -> str:
    lines = [f"{question}", ""] + [f"({c}) {text}" for c, text in zip(CHOICE_LETTERS, choices)]
    lines += ["", "Please reason step by step, and put the letter of the correct choice (A, B, C or D) within "
                  "\\boxed{}."]
    return "\n".join(lines)


class _StringsOnly(pickle.Unpickler):
    """LiveCodeBench pickles a JSON *string*; refuse every class so a hostile file cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def decode_lcb_tests(raw, where: str) -> list[dict]:
    """LiveCodeBench test cases: a JSON list, or base64(zlib(pickle(JSON string))) for the private ones."""
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str):
        raise MimoError(f"{where}: test cases should be a string, got {type(raw).__name__}")
    if raw.strip() == "":
        return []
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        text = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(raw.encode("ascii"))))).load()
        tests = json.loads(text)
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError, TypeError) as e:
        raise MimoError(f"{where}: private test cases are neither JSON nor base64(zlib(pickle(JSON))) ({e})") from None
    if not isinstance(tests, list):
        raise MimoError(f"{where}: test cases should decode to a list")
    return tests


def lcb_items(paths: list[Path], start: str, end: str) -> list[dict]:
    """code_generation_lite records (of all the release files given) with ``start <= contest_date < end``."""
    out, seen = [], set()
    for where, rec in (r for path in paths for r in read_records(path)):
        date = str(_field(rec, where, "contest_date"))[:10]
        if not start <= date < end:
            continue
        pid = str(_field(rec, where, "question_id"))
        if pid in seen:  # the release files overlap; the first copy wins
            continue
        seen.add(pid)
        if "public_test_cases" not in rec and "private_test_cases" not in rec:
            raise MimoError(f"{where}: no test cases (prompt-only files such as QwQ's livecodebench_v5.jsonl cannot "
                            "be graded; use livecodebench/code_generation_lite)")
        content = _field(rec, where, "question_content")
        meta = rec.get("metadata") or "{}"
        try:
            meta = json.loads(meta) if isinstance(meta, str) else dict(meta)
        except (json.JSONDecodeError, TypeError, ValueError):
            raise MimoError(f"{where}: metadata is not a JSON object") from None
        fn_name = meta.get("func_name")
        tests = []
        for raw in (rec.get("public_test_cases", "[]"), rec.get("private_test_cases", "[]")):
            for t in decode_lcb_tests(raw, where):
                if not isinstance(t, dict) or "input" not in t or "output" not in t:
                    raise MimoError(f"{where}: a test case lacks input/output")
                kind = t.get("testtype", "functional" if fn_name else "stdin")
                test = {"testtype": kind, "input": t["input"], "output": t["output"]}
                if kind == "functional":
                    if not fn_name:
                        raise MimoError(f"{where}: functional test without metadata.func_name")
                    test["fn_name"] = fn_name
                tests.append(test)
        if not tests:
            raise MimoError(f"{where}: problem {pid} has no test cases")
        starter = rec.get("starter_code") or ""
        out.append({"id": pid, "prompt": lcb_prompt(content, starter), "date": date,
                    "reference": {"tests": tests, "fn_name": fn_name}})
    return out


def lcb_prompt(question: str, starter_code: str) -> str:
    """LiveCodeBench's generation prompt for reasoning models (as in QwQ's evaluation files)."""
    head = ("You will be given a question (problem specification) and will generate a correct Python program that "
            f"matches the specification and passes all tests.\n\nQuestion: {question.strip()}\n\n")
    if starter_code.strip():
        return head + ("You will use the following starter code to write the solution to the problem and enclose "
                       f"your code within delimiters.\n```python\n{starter_code.rstrip()}\n```\n\n")
    return head + ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test "
                   "on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
                   "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
                   "```python\n# YOUR CODE HERE\n```\n\n")
