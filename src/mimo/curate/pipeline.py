"""`mimo data curate-rl`: MiMo's filters for RL problems, with a report of every problem dropped and why.

Input: JSONL problems of two kinds (``kind`` optional: records with ``tests`` are code)::
    {"id": "m1", "kind": "math", "problem": "...", "answer": "\\\\frac{1}{2}"}
    {"id": "c1", "kind": "code", "problem": "...", "tests": [...], "solution": "def f(x): ...", "fn_name": "f"}

Output: the kept problems in the format ``mimo rl --data`` trains on (:mod:`mimo.rl.problems`), each record
byte-for-byte its input line, plus these fields where a stage computed them:

* ``golden_verdicts`` (code with a ``solution``) -- the judge's verdict per test for the golden solution;
* ``pass_rate``, ``rollouts``, ``reference_pass_rate``, and for code ``pass_matrix``, ``test_pass_rates`` and
  ``levels`` -- from the model-based difficulty stage (``--model``/``--endpoint``/``--reference``,
  :mod:`mimo.curate.difficulty`);
* ``id`` -- ``line<N>`` for a record that had none.

Stages, in order (a problem is dropped for the first reason that applies; reasons in
:data:`mimo.curate.report.REASONS`):

1. records -- malformed JSON lines are reported with their line numbers and skipped (fatal with ``--strict``, as
   are records that are not problems); repeated ids are dropped;
2. rules -- math: proof and multiple-choice problems (:mod:`mimo.curate.rules`); code: no tests, or tests
   not in the judge's format;
3. decontamination -- a 16-gram shared with an evaluation benchmark (:class:`mimo.data.decontam.NgramIndex`, the
   index SFT data and evaluation use);
4. verification, on the reward pool's worker processes -- math: the gold answer must be one (not missing, a
   placeholder or a sentence) and Math-Verify must parse it to a mathematical expression; code: the golden
   solution runs in the sandboxed judge and must pass every test.  These come before dedup so that dedup keeps the
   first *valid* copy of a problem;
5. global n-gram dedup (:mod:`mimo.curate.dedup`);
6. optional LLM classifier for proof / multiple choice (``--llm_endpoint``, any OpenAI-compatible server);
7. optional model-based difficulty: rollouts through the RL engine, thresholds (MiMo: math pass rate > 0.9, code
   solved in all rollouts; problems a ``--reference`` model never solves).

Departure from the paper: it applies dedup, decontamination and the proof/multiple-choice rule to math; we apply
dedup and decontamination to code as well (LiveCodeBench and HumanEval are in the benchmark set).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mimo.config import F
from mimo.curate import difficulty as model_difficulty  # the module: tests stand in for its rollouts
from mimo.curate.dedup import NearDuplicates
from mimo.curate.report import Candidate, CurationReport
from mimo.curate.rules import LLMClassifier, answer_reason, multiple_choice_reason, proof_reason
from mimo.data.decontam import BENCHMARKS, NgramIndex
from mimo.errors import MimoError
from mimo.infer.client import ChatClient
from mimo.rewards import passed
from mimo.rewards.code import _check_tests, extract_code
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rl.rollout import RolloutConfig
from mimo.utils.io import atomic_open, iter_jsonl, open_text
from mimo.utils.logging import progress


@dataclasses.dataclass
class CurateConfig:
    input: str = F("", "input JSONL: math {id, problem, answer}, code {id, problem, tests, solution?, fn_name?}")
    output: str = F("", "output JSONL: the kept problems (the `mimo rl --data` format)")
    report: str = F("", "report JSON, with a markdown summary beside it ('': OUTPUT's stem + .report.json)")
    strict: bool = F(False, "a malformed line or record stops the run (false: reported and skipped)")
    benchmarks: list[str] = F(factory=lambda: list(BENCHMARKS),
                              help="decontaminate against these: names, FILE.jsonl[:field] or text files; [] = off")
    decontam_n: int = F(16, "decontamination n-gram length in words (MiMo: 16)")
    data_dir: str = F("", "evaluation data folder (default: $MIMO_EVAL_DATA, else shared/data nearby)")
    dedup_n: int = F(5, "dedup n-gram length in words")
    dedup_threshold: float = F(0.7, "dedup: Jaccard similarity of n-gram sets at which problems are duplicates")
    llm_endpoint: str = F("", "LLM proof/multiple-choice classifier: OpenAI-compatible base URL ('' = rules only)")
    llm_model: str = F("default", "LLM classifier: model name sent to the endpoint")
    llm_concurrency: int = F(8, "LLM classifier: requests in flight")
    model: str = F("", "difficulty: policy model directory (the SFT model) to roll out ('' = no difficulty filter)")
    endpoint: str = F("", "difficulty: OpenAI-compatible /v1 URL serving the policy instead of --model")
    tokenizer: str = F("", "difficulty with endpoints: model or tokenizer directory to build the prompts")
    rollouts: int = F(16, "difficulty: rollouts per problem (MiMo: 16)")
    reference: str = F("", "difficulty: stronger model directory; problems it never solves are dropped")
    reference_endpoint: str = F("", "difficulty: OpenAI-compatible /v1 URL serving the reference model")
    reference_rollouts: int = F(0, "difficulty: reference rollouts per problem (0: --rollouts)")
    math_max_pass_rate: float = F(0.9, "difficulty: drop math problems whose policy pass rate is above this")
    code_max_pass_rate: float = F(1.0, "difficulty: drop code problems whose policy pass rate reaches this "
                                       "(1.0: solved in every rollout)")
    n_levels: int = F(3, "difficulty: test difficulty levels assigned to code problems from the pass matrix")
    rollout: RolloutConfig = F(factory=RolloutConfig, help="difficulty: generation (backend local|vllm, workers, "
                                                          "max_new_tokens, temperature, top_p)")
    pool: PoolConfig = F(factory=PoolConfig, help="reward workers: Math-Verify, the code judge and its limits")
    seed: int = F(0, "rollout seed")


# ---------------------------------------------------------------------------------------------------- stages


def _raw_lines(path: Path) -> list[str]:
    """The file's lines as :func:`mimo.utils.io.iter_jsonl` numbers them (text mode, universal newlines)."""
    with open_text(path) as f:
        return [line.rstrip("\n") for line in f]


def load_items(cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 1: parse, validate and number the records."""
    path = Path(cfg.input)
    bad: list[tuple[int, str]] | None = None if cfg.strict else []
    records = list(iter_jsonl(path, bad_lines=bad, with_lineno=True))
    raw = _raw_lines(path)
    for line, why in bad or ():
        report.bad_line(line, why)
    items, seen = [], set()
    for line, rec in records:
        report.records += 1
        kind = rec.get("kind") or ("code" if "tests" in rec else "math")
        item = Candidate(line, raw[line - 1], rec, str(rec.get("id", f"line{line}")), str(kind))
        if "id" not in rec:
            item.added["id"] = item.id
        report.kinds_in[item.kind] += 1
        why = _record_problem(rec, item.kind)
        if why:
            if cfg.strict:
                raise MimoError(f"{path}:{line}: {why}")
            report.drop(item, "bad_record", why)
        elif item.id in seen:
            report.drop(item, "duplicate_id", f"id {item.id!r} already used")
        else:
            seen.add(item.id)
            items.append(item)
    return items


def _record_problem(rec: dict, kind: str) -> str:
    if kind not in ("math", "code"):
        return f"kind must be 'math' or 'code', got {kind!r}"
    if not isinstance(rec.get("problem"), str) or not rec["problem"].strip():
        return "'problem' must be a non-empty string"
    if "solution" in rec and not isinstance(rec["solution"], str):
        return "'solution' must be a string"
    return ""


def rule_filter(items: list[Candidate], report: CurationReport) -> list[Candidate]:
    """Stage 2: proof and multiple-choice rules (math); tests present and in the judge's format (code)."""

    kept = []
    for item in items:
        rec = item.rec
        if item.kind == "math":
            why = proof_reason(item.text, rec.get("answer"))
            if why:
                report.drop(item, "proof", why)
                continue
            why = multiple_choice_reason(item.text, rec.get("answer"))
            if why:
                report.drop(item, "multiple_choice", why)
                continue
        else:
            tests = rec.get("tests")
            if not isinstance(tests, list) or not tests:
                report.drop(item, "no_tests", "no tests" if tests in (None, []) else "'tests' is not a list")
                continue
            try:
                _check_tests(tests, rec.get("fn_name"))
            except MimoError as e:
                report.drop(item, "bad_tests", str(e))
                continue
        kept.append(item)
    return kept


def decontaminate(items: list[Candidate], cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 3: drop problems sharing an n-gram with a benchmark item."""

    if not cfg.benchmarks:
        report.notes["decontamination"] = "off (no benchmarks)"
        return items
    try:
        index = NgramIndex.from_benchmarks(cfg.benchmarks, n=cfg.decontam_n, data_dir=cfg.data_dir or None)
    except MimoError as e:
        raise MimoError(f"{e} (or pass --benchmarks [] to curate without decontamination)") from None
    report.notes["decontamination"] = (f"{len(index.items)} benchmark items ({', '.join(cfg.benchmarks)}), "
                                       f"{cfg.decontam_n}-grams")
    kept = []
    for item in items:
        hits = index.matches(item.text)
        if hits:
            report.drop(item, "contaminated", "overlaps " + ", ".join(hits[:5]) + (" ..." if len(hits) > 5 else ""))
        else:
            kept.append(item)
    return kept


def verify(items: list[Candidate], cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 4: Math-Verify parses every gold answer; every golden solution passes all its tests."""

    jobs: list[tuple[Candidate, str, str, object]] = []  # (item, kind, completion, reference)
    failed: set[int] = set()  # id() of the dropped items
    for item in items:
        rec = item.rec
        if item.kind == "math":
            why = answer_reason(rec.get("answer"))
            if why:
                report.drop(item, "unparsable_answer", f"gold answer: {why}")
                failed.add(id(item))
                continue
            jobs.append((item, "gold", "", str(rec["answer"])))
        elif isinstance(rec.get("solution"), str):
            code = rec["solution"]
            code = (extract_code(code) or code) if "```" in code else code
            jobs.append((item, "judge", code, {"tests": rec["tests"], "fn_name": rec.get("fn_name"),
                                               "scheme": "vanilla"}))
    no_solution = [item.id for item in items if item.kind == "code" and not isinstance(item.rec.get("solution"), str)]
    if no_solution:
        report.notes["code_without_solution"] = f"{len(no_solution)} kept unverified (no golden solution)"
    if jobs:
        with RewardPool(cfg.pool) as pool:
            futures = [pool.submit(kind, completion, ref) for _, kind, completion, ref in jobs]
            for (item, kind, _, _), future in zip(jobs, progress(futures, desc="verify answers / golden solutions")):
                drop = _verification_drop(item, kind, future)
                if drop:
                    report.drop(item, drop[0], drop[1], **drop[2])
                    failed.add(id(item))
    return [item for item in items if id(item) not in failed]


def _verification_drop(item: Candidate, kind: str, future) -> tuple[str, str, dict] | None:
    """(reason, detail, extra report fields) when the gold answer or the golden solution fails, else None."""
    try:
        res = future.result()
    except MimoError as e:
        # Inputs were validated before, so this is the set-up (no bubblewrap, bad --pool.limits): every problem
        # would fail the same way -- stop rather than drop them all.
        raise MimoError(f"verification of {item.id!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- a failure of ours: reported, never a silent keep or drop
        return ("unparsable_answer" if kind == "gold" else "judge_error"), f"{type(e).__name__}: {e}"[:300], {}
    if kind == "gold":
        if passed(res.score):
            return None
        why = {"bad_gold": "Math-Verify parses nothing from it", "timeout": "Math-Verify timed out on it",
               "not_math": "Math-Verify finds no mathematical expression in it"}
        return "unparsable_answer", why.get(res.reason, res.reason), {}
    verdicts = list(res.verdicts)
    if res.reason == "worker_died" or "sandbox_error" in verdicts:
        return "judge_error", res.reason or "sandbox error", {"verdicts": verdicts}
    if not verdicts or any(v != "passed" for v in verdicts):
        return "golden_fails", res.reason or "no verdicts", {"verdicts": verdicts}
    item.added["golden_verdicts"] = verdicts
    return None


def dedup(items: list[Candidate], cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 5: keep the first of each group of near-duplicates."""

    index = NearDuplicates(n=cfg.dedup_n, threshold=cfg.dedup_threshold)
    kept = []
    for item in items:
        hit = index.check_add(item.id, item.text)
        if hit:
            report.drop(item, "duplicate", f"duplicates {hit[0]!r} (similarity {hit[1]:g})")
        else:
            kept.append(item)
    return kept


def llm_classify(items: list[Candidate], cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 6 (``--llm_endpoint``): the LLM's proof / multiple-choice labels for the math problems left."""

    math = [item for item in items if item.kind == "math"]
    labels = LLMClassifier(ChatClient(cfg.llm_endpoint, cfg.llm_model),
                           concurrency=cfg.llm_concurrency).classify([item.text for item in math])
    gone, unread = set(), []
    for item, label in zip(math, labels):
        if label is None:
            unread.append(item.id)
        elif label["proof"] or label["multiple_choice"]:
            report.drop(item, "proof" if label["proof"] else "multiple_choice", "LLM classifier")
            gone.add(id(item))
    report.notes["llm_classifier"] = f"{len(math)} math problems asked, {len(unread)} replies unreadable (kept)"
    if unread:
        report.notes["llm_unclassified"] = unread
    return [item for item in items if id(item) not in gone]


def difficulty(items: list[Candidate], cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Stage 7 (``--model``/``--endpoint``/``--reference``): rollouts and the pass-rate thresholds."""

    def records(chosen):
        return {item.id: {**item.rec, "id": item.id, "kind": item.kind} for item in chosen}

    common = dict(tokenizer=cfg.tokenizer, rollout_cfg=cfg.rollout, pool_cfg=cfg.pool, seed=cfg.seed)
    reference: dict = {}
    if (cfg.reference or cfg.reference_endpoint) and items:
        n = cfg.reference_rollouts or cfg.rollouts
        reference, timing = model_difficulty.roll_out(records(items), n, model=cfg.reference,
                                                       endpoint=cfg.reference_endpoint, **common)
        report.notes["reference_rollouts"] = f"{n} per problem, {timing['seconds']}s"
        survivors = []
        for item in items:
            ref = reference.get(item.id)
            drop = ("rollout_failed", "reference rollouts missing") if ref is None else \
                model_difficulty.difficulty_drop(item.kind, None, ref)
            if drop:
                report.drop(item, *drop, **({"reference_pass_rate": round(ref.pass_rate, 6)} if ref else {}))
            else:
                survivors.append(item)
        items = survivors
    policy: dict = {}
    if (cfg.model or cfg.endpoint) and items:
        policy, timing = model_difficulty.roll_out(records(items), cfg.rollouts, model=cfg.model,
                                                   endpoint=cfg.endpoint, **common)
        report.notes["policy_rollouts"] = (f"{cfg.rollouts} per problem, {timing['seconds']}s, "
                                           f"idle ratio {timing['idle_ratio']}")
    kept = []
    for item in items:
        stats, ref = policy.get(item.id), reference.get(item.id)
        if (cfg.model or cfg.endpoint) and stats is None:
            report.drop(item, "rollout_failed", "policy rollouts missing")
            continue
        drop = model_difficulty.difficulty_drop(item.kind, stats, None, math_max_pass_rate=cfg.math_max_pass_rate,
                               code_max_pass_rate=cfg.code_max_pass_rate)
        fields = model_difficulty.added_fields(item.kind, stats, ref, cfg.n_levels)
        if drop:
            report.drop(item, *drop, **{k: v for k, v in fields.items() if k.endswith("pass_rate")})
            continue
        item.added.update(fields)
        kept.append(item)
    return kept


# ------------------------------------------------------------------------------------------------------ main


def curate(cfg: CurateConfig, report: CurationReport) -> list[Candidate]:
    """Run the stages (module docstring); returns the kept items, in input order."""
    stages = [("rules", lambda xs: rule_filter(xs, report)),
              ("decontaminate", lambda xs: decontaminate(xs, cfg, report)),
              ("verify", lambda xs: verify(xs, cfg, report)),
              ("dedup", lambda xs: dedup(xs, cfg, report))]
    if cfg.llm_endpoint:
        stages.append(("llm", lambda xs: llm_classify(xs, cfg, report)))
    if cfg.model or cfg.endpoint or cfg.reference or cfg.reference_endpoint:
        stages.append(("difficulty", lambda xs: difficulty(xs, cfg, report)))
    t0 = time.perf_counter()
    items = load_items(cfg, report)
    report.seconds["load"] = time.perf_counter() - t0
    for name, stage in stages:
        t0 = time.perf_counter()
        items = stage(items)
        report.seconds[name] = time.perf_counter() - t0
    return items


def main(cfg: CurateConfig) -> dict:
    """Curate ``cfg.input`` into ``cfg.output``; writes and returns the report."""
    if not cfg.input or not cfg.output:
        raise MimoError("curate-rl: --input FILE and --output FILE are required")
    if cfg.model and cfg.endpoint:
        raise MimoError("curate-rl: give --model DIR or --endpoint URL, not both")
    if cfg.reference and cfg.reference_endpoint:
        raise MimoError("curate-rl: give --reference DIR or --reference_endpoint URL, not both")
    out = Path(cfg.output)
    report_path = Path(cfg.report) if cfg.report else out.with_name(out.name.split(".")[0] + ".report.json")
    if report_path.resolve() == out.resolve() or Path(cfg.input).resolve() == out.resolve():
        raise MimoError("curate-rl: --output must differ from --input and --report")
    report = CurationReport(cfg.input)
    kept = curate(cfg, report)
    with atomic_open(out, "w", encoding="utf-8") as f:
        for item in kept:
            f.write(item.output_line() + "\n")
    json_path, md_path = report.write(report_path, kept)
    data = report.to_dict(kept)
    counts = ", ".join(f"{r} {n}" for r, n in data["counts"].items() if n)
    print(f"[mimo data curate-rl] {data['records']} problems: {len(kept)} kept"
          + (f", dropped {counts}" if counts else "")
          + (f", {len(report.malformed)} malformed lines skipped" if report.malformed else "")
          + f" -> {out}; report {json_path} (+ {md_path.name})", flush=True)
    return data
