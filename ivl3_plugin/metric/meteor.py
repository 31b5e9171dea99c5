"""METEOR 1.5 through its Java jar, the way coco-caption runs it (``-l en -norm``, stdio).

Optional: needs ``java`` and ``meteor-1.5.jar`` (with its ``data/paraphrase-en.gz``).
The jar is looked for in ``$IVL3_METEOR_JAR`` and then inside an installed
``pycocoevalcap``.  :func:`find_meteor` says why METEOR is unavailable, so
callers can skip it with a clear message instead of failing.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..settings import METEOR_JAR

JAR_ENV = METEOR_JAR.name


def find_meteor(jar: Optional[str] = None) -> Tuple[Optional[Path], str]:
    """(path to the jar, "") when METEOR can run, else (None, the reason).

    A jar the user named (``jar``, i.e. ``--meteor-jar``, or ``$IVL3_METEOR_JAR``) that is not a file is
    an error, not a reason to fall back silently to another jar.
    """
    from ..shared.errors import InputError

    for given, where in ((jar, "--meteor-jar"), (METEOR_JAR.get(), METEOR_JAR.name)):
        if given and not Path(given).is_file():
            raise InputError(f"METEOR jar {given} ({where}): no such file")
    java = shutil.which("java")
    if not java:
        return None, "no `java` on PATH (METEOR 1.5 is a Java program)"
    candidates = [jar, METEOR_JAR.get()]
    try:
        import importlib.util

        spec = importlib.util.find_spec("pycocoevalcap")
        if spec and spec.submodule_search_locations:
            candidates.append(str(Path(list(spec.submodule_search_locations)[0]) / "meteor" / "meteor-1.5.jar"))
    except (ImportError, ValueError):
        pass
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c), ""
    return None, (f"meteor-1.5.jar not found: set {JAR_ENV} or `pip install pycocoevalcap` "
                  "(it ships the jar)")


def _clean(text: str) -> str:
    # '|||' separates fields in METEOR's stdio protocol and newlines end a request
    return " ".join(text.replace("|||", " ").split())


def meteor_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], jar: Path,
                  language: str = "en") -> Tuple[float, List[float]]:
    """(corpus METEOR, per-item METEOR) in [0, 1] on already tokenised, lower-cased text."""
    if not hyps:
        return 0.0, []
    lines = []
    for hyp, rs in zip(hyps, refs):
        lines.append(" ||| ".join(["SCORE", *[_clean(r) for r in (rs or [""])], _clean(hyp)]))
    argv = ["java", "-jar", "-Xmx2G", str(jar), "-", "-", "-stdio", "-l", language, "-norm"]
    proc = subprocess.Popen(argv, cwd=str(Path(jar).parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        stats = []
        for line in lines:  # one request, one answer: keeps both pipes from filling up
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            stats.append(proc.stdout.readline().strip())
        proc.stdin.write(" ||| ".join(["EVAL", *stats]) + "\n")
        proc.stdin.flush()
        per_item = [float(proc.stdout.readline().strip()) for _ in stats]
        corpus = float(proc.stdout.readline().strip())
    except (ValueError, BrokenPipeError) as exc:
        proc.kill()
        raise RuntimeError(f"METEOR jar {jar} failed: {proc.stderr.read()[-2000:] or exc}") from exc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)
    return corpus, per_item
