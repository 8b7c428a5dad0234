"""The README's commands, as written, parse: every ``mimo`` line goes through the real option parser and config
checks (types, domains, presets) without running the stage; paths a command reads from ``runs/`` are ones an
earlier README command writes; benchmark flags exist; the README says how to get ``mimo`` on PATH."""

from __future__ import annotations

import dataclasses
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mimo.cli import COMMANDS
from mimo.cli import main as mimo_main
from mimo.config import add_config_args, config_from_args

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_commands() -> list[str]:
    """Command lines of the README's fenced blocks (continuations joined, comments and prompts dropped)."""
    lines, block, out = README.splitlines(), False, []
    pending = ""
    for line in lines:
        if line.startswith("```"):
            block = not block
            continue
        if not block:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        if text and not text.startswith("#"):
            out.append(text)
    return out


def _tokens(line: str) -> list[str] | None:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return None


def mimo_lines() -> list[list[str]]:
    """``mimo ...`` invocations (also behind ``.venv/bin/``, ``&&`` and ``torchrun -m mimo.cli``)."""
    found = []
    for line in fenced_commands():
        for part in line.split("&&"):
            toks = _tokens(part.strip())
            if not toks:
                continue
            if toks[0] == "torchrun" and "mimo.cli" in toks:
                toks = ["mimo", *toks[toks.index("mimo.cli") + 1:]]
            if toks[0] in ("mimo", ".venv/bin/mimo"):
                found.append(toks[1:])
    return found


def _placeholder(argv: list[str]) -> bool:
    """Lines that show a shape rather than a command: ``...``, ``a|b`` alternatives, ``[--optional ...]``."""
    return any(t == "..." or t.startswith("[") or ("|" in t and not t.startswith("http")) for t in argv)


LINES = [argv for argv in mimo_lines() if not _placeholder(argv)]


def test_readme_has_the_commands_and_says_how_to_run_them():
    assert len(LINES) >= 30
    assert "source .venv/bin/activate" in README
    assert {argv[0] for argv in LINES} >= {"demo", "pretrain", "sft", "rl", "eval", "data", "train-mtp",
                                           "generate", "chat", "serve"}


def _check_parse(argv: list[str], monkeypatch) -> object:
    """Run ``mimo argv`` up to the resolved config (the stage's main is not called); returns the config."""
    name, rest = argv[0], list(argv[1:])
    if "--config" in rest and not (ROOT / rest[rest.index("--config") + 1]).is_file():  # the reader's own file
        i = rest.index("--config")
        del rest[i:i + 2]
    module = importlib.import_module(COMMANDS[name][0])
    resolved = []

    def fake_stage_cli(args, *, prog, description, cls, section, main):
        import argparse

        parser = argparse.ArgumentParser(prog=prog, description=description)
        add_config_args(parser, cls, section)
        resolved.append(config_from_args(cls, section, parser.parse_args(args)))
        return 0

    target = module
    if name == "data":
        target = importlib.import_module("mimo.data.cli")
    monkeypatch.setattr(target, "stage_cli", fake_stage_cli)
    try:
        rc = module.cli(rest)
    except SystemExit as e:  # --help
        assert e.code == 0 and "--help" in rest, argv
        return None
    assert rc == 0, argv
    return resolved[0] if resolved else None


@pytest.mark.parametrize("argv", LINES, ids=[" ".join(a)[:60] for a in LINES])
def test_readme_mimo_command_parses(argv, monkeypatch, capsys):
    _check_parse(argv, monkeypatch)


def test_runs_paths_read_are_paths_an_earlier_command_writes(monkeypatch, capsys):
    written, read = set(), []
    for argv in LINES:
        cfg = _check_parse(argv, monkeypatch)
        if cfg is None:
            continue
        fields = dataclasses.asdict(cfg)
        for key in ("out_dir", "out"):
            if isinstance(fields.get(key), str) and fields[key]:
                written.add(fields[key].rstrip("/"))
                if argv[0] == "demo":
                    written.update(f"{fields[key]}/{s}" for s in ("pretrain", "sft", "rl", "rl_zero", "control",
                                                                  "mtp"))
        for key in ("init_from", "model", "tokenizer"):
            value = fields.get(key)
            if isinstance(value, str) and value.startswith("runs/"):
                read.append((" ".join(argv), value))
    for line, path in read:
        assert path.endswith("/final") and path[: -len("/final")] in written, (line, path, sorted(written))


def test_benchmark_flags_in_the_readme_exist():
    for line in fenced_commands():
        toks = _tokens(line)
        if not toks or toks[0] != "python" or not toks[1].startswith("benchmarks/"):
            continue
        script = ROOT / toks[1]
        assert script.is_file(), line
        flags = {t.split("=")[0] for t in toks[2:] if t.startswith("--")}
        helptext = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                  timeout=120, cwd=ROOT).stdout
        missing = [f for f in flags if not re.search(rf"{re.escape(f)}\b", helptext)]
        assert not missing, (line, missing)


def test_mimo_help_and_verbose_flag(capsys):
    assert mimo_main(["--help"]) == 0
    assert "--verbose" in capsys.readouterr().out
