"""``bioleaf``: the command-line interface (flags: :mod:`bioleaf.cli.parser`; commands:
:mod:`bioleaf.cli.commands`).

Every error a user can cause ends as one line on stderr and a non-zero exit code:
2 for a usage error (flags, presets, parameters), 1 for a data error (missing or malformed
files, divergence), 130 for an interrupted training (a checkpoint was written). ``--debug``
shows the traceback instead, for developers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bioleaf.cli.commands import COMMANDS
from bioleaf.cli.parser import build_parser
from bioleaf.errors import BioleafError, is_out_of_memory

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default: the process's arguments); its exit code."""
    args = build_parser().parse_args(argv)
    code, abandon = _run(args)
    from bioleaf.training.distributed import joined
    if abandon or joined():  # --distributed: skip the backend's native teardown (see distributed.teardown_parallel)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(args: argparse.Namespace) -> tuple[int, bool]:
    """Run the command: its exit code, and whether the process must leave at once (a lost peer)."""
    try:
        return COMMANDS[args.command](args), False
    except BioleafError as e:
        if args.debug:
            raise
        print(f"bioleaf {args.command}: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return e.exit_code, getattr(e, "abandon_process", False)
    except KeyboardInterrupt:  # a SIGINT outside training, or a second one during it: stop at once
        if args.debug:
            raise
        last = Path(args.out) / "checkpoint.safetensors" if args.command == "train" else None
        hint = (f"; the last checkpoint {last} is intact: continue with the same command plus --resume"
                if last is not None and last.is_file() else "")
        print(f"bioleaf {args.command}: interrupted{hint}", file=sys.stderr)
        return 130, False
    except Exception as e:  # never a traceback without --debug
        if args.debug:
            raise
        print(f"bioleaf {args.command}: error: {_unexpected(e)}", file=sys.stderr)
        return 1, False


def _unexpected(e: Exception) -> str:
    """One line for an error that is not a :class:`BioleafError`: a file the system refused, exhausted
    memory, or a bug (then say how to get the traceback)."""
    first = " ".join(str(e).split())
    if isinstance(e, OSError):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return f"{where}{e.strerror or first or type(e).__name__}"
    if is_out_of_memory(e):
        return "out of memory (use a smaller --arch or --batch-size)"
    return f"internal error: {type(e).__name__}: {first[:300]} (rerun with --debug for the traceback, and please report it)"
