"""Sphinx directive ``bioleaf-cli``: the command-line reference, generated from the argparse parser.

Each subcommand of :func:`bioleaf.cli.build_parser` becomes a section holding its ``--help`` text, so
the page always lists the flags the installed code accepts.
"""

from __future__ import annotations

import argparse
import os

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

HELP_WIDTH = "100"  # argparse wraps at $COLUMNS; fixed so the page does not depend on the terminal


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every subcommand, in the parser's order."""
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


class CliReference(SphinxDirective):
    """Insert one section per ``bioleaf`` subcommand with its help text."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from bioleaf.cli import build_parser

        parser = build_parser()
        parser.prog = "bioleaf"
        result: list[nodes.Node] = [nodes.literal_block(text=_help(parser), language="text")]
        for name, summary, sub in _subcommands(parser):
            title = f"bioleaf {name}"
            section = nodes.section(ids=[nodes.make_id(f"cli-{name}")], names=[nodes.fully_normalize_name(title)])
            section += nodes.title(text=title)
            if summary:
                section += nodes.paragraph(text=summary[0].upper() + summary[1:] + ".")
            section += nodes.literal_block(text=_help(sub), language="text")
            self.state.document.note_implicit_target(section)
            result.append(section)
        return result


def setup(app):
    app.add_directive("bioleaf-cli", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
