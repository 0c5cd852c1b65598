"""Command line: `python -m suite <command>`. Each command module owns its arguments and its run;
this file only builds the parser from them and maps errors to exit codes (bad input: one line on
stderr, exit 2; Ctrl-C: 130; the suite itself failed, a command's import included: 3, never 1,
which regress reserves for WORSE). SIGINT is watched around every command (core.plugins), so a
KeyboardInterrupt a plugin raises is told from a Ctrl-C."""
from __future__ import annotations

import importlib
import sys
import traceback

from suite.core.plugins import exit_text, watch_sigint
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
        with watch_sigint():
            args = build_parser().parse_args(argv)
            try:
                return commands()[args.command].run(args)
            except SystemExit as e:  # commands return their code: this one is code the suite ran (a plugin)
                print(f"error: code run by the command called {exit_text(e)}; no command ends that way, so it "
                      f"is not the command's result (exit 3)", file=sys.stderr)
                return 3
    except INPUT_ERRORS as e:
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of the suite (or a missing dependency of a command): exit 3
        traceback.print_exc()
        print(f"error: the command failed ({type(e).__name__}; exit 3)", file=sys.stderr)
        return 3
