"""``ivl3``: one sub-command per module in this package.

Each module ``ivl3_plugin/cli/<name>.py`` defines ``add_parser(subparsers)``
which registers its sub-command and sets ``func`` (taking the parsed args,
returning an exit status).  Modules import their heavy dependencies inside
``func`` so ``ivl3 --help`` stays fast.

Errors (docs/convert.md, "Exit status and errors"): an error in the user's input — a
:class:`UserError`, any ``InputError`` (bad file, row, field), ``SettingError``, ``RecipeError``,
``HostError``, a registry's ``RegistrationError``, a file that is missing, unreadable, unwritable
or of the wrong kind (``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``,
``NotADirectoryError``, ``FileExistsError``) or not UTF-8 — is printed as one line
``ivl3 COMMAND: error: MESSAGE`` with exit status 2, never a traceback.  Anything else is a bug:
one line names the exception and where it was raised, the full traceback goes to a file whose path
the line gives, and the exit status is 70 (``EX_SOFTWARE``), so it collides with neither 1 ("some
rows skipped") nor 2.  A closed output pipe (``ivl3 settings | head``) ends quietly with status 141.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import List, Optional

INTERNAL_ERROR = 70  # sysexits.h EX_SOFTWARE: a bug, not the user's input


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the message and where help is, not the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ivl3", description="Fine-tune InternVL3 for video summarisation (ms-swift / LLaMA-Factory).")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"ivl3-plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe (`ivl3 ... | head`) shows here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away: stop quietly, as a SIGPIPE-killed program would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - sorted below: the user's input (exit 2) or a bug (exit 70)
        message = input_error_message(exc)
        if message is None:
            return internal_error(args.command, exc)
        print(f"ivl3 {args.command}: error: {message}", file=sys.stderr)
        return 2


class UserError(Exception):
    """An error in the user's input: printed as one line, exit status 2."""


# Error classes that mean "bad input", by module: looked up only in modules already imported (an
# exception of a class whose module was never imported cannot have been raised), so no import here.
_INPUT_ERRORS = (
    "ivl3_plugin.shared.errors:InputError", "ivl3_plugin.settings:SettingError",
    "ivl3_plugin.recipe.config:RecipeError", "ivl3_plugin.hosts.protocol:HostError",
    "ivl3_plugin.plugins.registry:RegistrationError", "ivl3_plugin.template.errors:TemplateInputError",
    "ivl3_plugin.template.spec:TemplateArgsError",
)
_FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def input_error_message(exc: BaseException) -> Optional[str]:
    """The one-line message for an error in the user's input, or None when ``exc`` is a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, _FILE_ERRORS):
        return file_error_message(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"an input file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
    for ref in _INPUT_ERRORS:
        module, _, name = ref.partition(":")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return str(exc)
    return None


def file_error_message(exc: OSError) -> str:
    """``PATH: Permission denied`` (both paths for a rename); what the OS says, on one line."""
    what = exc.strerror or str(exc)
    if exc.filename is None:
        return what
    paths = f"{exc.filename}" + (f" -> {exc.filename2}" if getattr(exc, "filename2", None) else "")
    return f"{paths}: {what}"


def internal_error(command: str, exc: BaseException) -> int:
    """A bug: one line with the exception and where it was raised, the full traceback in a file."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    path: Optional[Path] = Path(tempfile.gettempdir()) / f"ivl3-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.traceback.txt"
    try:
        path.write_text(f"ivl3 {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8")
    except OSError:
        path = None
    first = (str(exc).splitlines() or [""])[0][:300]
    print(f"ivl3 {command}: internal error (a bug in ivl3 or a plugin, not in your input): "
          f"{type(exc).__name__}: {first}{where}; "
          + (f"full traceback in {path}" if path else "traceback follows"), file=sys.stderr)
    if path is None:
        print(text, file=sys.stderr, end="")
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
