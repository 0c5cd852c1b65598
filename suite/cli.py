"""Command line: `python -m suite <command>`. Each command module owns its arguments and its run;
this file only builds the parser from them and maps errors to exit codes (bad input: one line on
stderr, exit 2; Ctrl-C: 130)."""
from __future__ import annotations

import importlib
import sys

from suite.errors import INPUT_ERRORS, message
from suite.pipeline.options import Parser

#: (module, attribute) of each command, in the order `--help` lists them; imported when the parser is built
COMMANDS = (("train", "COMMAND"), ("catalog", "MODELS_COMMAND"), ("catalog", "TASKS_COMMAND"),
            ("reproduce", "COMMAND"), ("audit", "COMMAND"), ("regress", "COMMAND"), ("flops", "COMMAND"),
            ("figures", "COMMAND"), ("gpucheck", "COMMAND"), ("claims", "COMMAND"))


def commands() -> dict:
    out = {}
    for module, attr in COMMANDS:
        cmd = getattr(importlib.import_module(f"suite.commands.{module}"), attr)
        out[cmd.name] = cmd
    return out


def build_parser() -> Parser:
    p = Parser(prog="python -m suite", description="Routed Attention benchmark and reproduction suite")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for cmd in commands().values():
        cmd.add_arguments(sub.add_parser(cmd.name, help=cmd.help))
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return commands()[args.command].run(args)
    except INPUT_ERRORS as e:
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
