"""`mimo data <sub-command>`: the pretraining data stages, and `curate-rl` for RL problems.

Each sub-command is one row of :data:`SUBCOMMANDS` -- ``name: (module, config class, description)`` -- whose module
has ``main(cfg)``; flags come from the config dataclass and YAML presets/configs fill it from the section
``data.<name>`` (e.g. ``data: {mix: {stages: [...]}}``).  Adding a sub-command is adding a row.
"""

from __future__ import annotations

import importlib
import sys

from mimo.config import stage_cli

# name -> (module with main(cfg), config class name in that module, one-line description)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "extract": ("mimo.data.extract", "ExtractConfig", "HTML -> text keeping LaTeX/MathJax/MathML/KaTeX, code, replies"),
    "dedup": ("mimo.data.dedup", "DedupConfig", "URL exact dedup + MinHash near-dup (datatrove stages)"),
    "tag": ("mimo.data.tag", "TagConfig", "domain / quality / reasoning-depth tags (small model or LLM endpoint)"),
    "decontaminate": ("mimo.data.decontam", "DecontamConfig", "drop records sharing a 16-gram with a benchmark"),
    "synthesize": ("mimo.data.synthesize", "SynthesizeConfig", "synthetic reasoning responses (endpoint or toy)"),
    "mix": ("mimo.data.mix", "MixConfig", "three pretraining stages -> token shards for `mimo pretrain`"),
    "curate-rl": ("mimo.curate.pipeline", "CurateConfig", "RL problems: drop proofs, multiple choice, bad "
                  "answers/tests, duplicates, contamination, too easy; report every drop"),
    "pipeline": ("mimo.data.pipeline", "PipelineConfig", "every stage end to end on a folder of pages"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: mimo data <sub-command> [options]", "", "sub-commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, _, desc) in SUBCOMMANDS.items()]
    lines += ["", "Run `mimo data <sub-command> --help` for its options."]
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"mimo data: error: unknown sub-command {name!r} (sub-commands: {', '.join(SUBCOMMANDS)})",
              file=sys.stderr)
        return 2
    module_name, cls_name, desc = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    return stage_cli(rest, prog=f"mimo data {name}", description=desc, cls=cls, section=f"data.{name}",
                     main=lambda cfg: (module.main(cfg), 0)[1])
