"""What `make setup` (and, with --tests, `make test`) needs from the machine, checked before anything is installed.

Run by the Makefile with the interpreter that creates .venv. Exits 1 with one line per missing
prerequisite (and how to get it); prints a warning for what is only untested.
Tested: Linux x86_64, CPython 3.11, pip from PyPI, g++ 12 (see README, Development).
"""
from __future__ import annotations

import platform
import shutil
import sys

TESTED_PYTHON = (3, 11)
problems, warnings = [], []

if sys.version_info < (3, 10):
    problems.append(f"Python {platform.python_version()} is too old: ivl3-plugin needs 3.10+ (tested on 3.11); "
                    "run `make PYTHON=python3.11 …`")
elif sys.version_info[:2] != TESTED_PYTHON:
    warnings.append(f"Python {platform.python_version()}: the pinned set (constraints.txt) is tested on "
                    f"{TESTED_PYTHON[0]}.{TESTED_PYTHON[1]} only; pip may find no wheel for a pin")
try:
    import ensurepip  # noqa: F401  (Debian's python3 lacks it without python3-venv)
    import venv  # noqa: F401
except ImportError:
    problems.append("this Python cannot create virtual environments: install python3-venv "
                    "(Debian/Ubuntu: apt-get install python3-venv)")
if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
    warnings.append(f"{platform.system()} {platform.machine()}: only Linux x86_64 is tested (decord and the "
                    "pinned torch wheels may not exist here)")
if "--tests" in sys.argv[1:] and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
    problems.append("no C++ compiler on PATH (c++, g++ or clang++): the test suite runs torch.compile on the "
                    "CPU, which compiles C++ (Debian/Ubuntu: apt-get install g++)")

for w in warnings:
    print(f"check_prerequisites: warning: {w}", file=sys.stderr)
for p in problems:
    print(f"check_prerequisites: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"check_prerequisites: ok (Python {platform.python_version()}, {platform.system()} {platform.machine()})")
