"""Every environment variable ivl3-plugin reads, declared once: name, type, default, meaning.

Why one table: environment variables are a configuration surface users cannot discover by
reading ``--help``, and ms-swift hands the environment to every rank and dataset worker, so a
variable read in one module and spelt differently in another silently does nothing.  Here each
has one parser (one yes/no grammar), one default, and a row in ``docs/settings.md``, which is
generated from :data:`SETTINGS` (``ivl3 settings --markdown``) and checked by a test.

What is an environment variable: *process* settings (where files live, which plugins load,
switches for a backend).  A template's run settings travel in one variable keyed by template
name (:data:`TEMPLATE_ARGS`), so they reach only the template they name, and a trainer callback's in one
keyed by callback name (:data:`CALLBACK_ARGS`); the rest of a run's
configuration is the recipe.  No other module reads ``os.environ`` for an ``IVL3_`` name.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SettingError(ValueError):
    """An environment variable holds a value its declaration does not accept; names the variable."""


def parse_bool(raw: str, name: str = "value") -> bool:
    """The one yes/no grammar: 1/true/yes/on and 0/false/no/off (any case); anything else is an error."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingError(f"{name}={raw!r}: expected one of {', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)}")


def _names(raw: str, name: str):
    return [p.strip() for p in raw.split(",") if p.strip()]


def _json_object(raw: str, name: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingError(f"{name} is not valid JSON ({exc.msg} at column {exc.colno}): {raw!r}") from None
    if not isinstance(value, dict):
        raise SettingError(f"{name} must be a JSON object, got {type(value).__name__}: {raw!r}")
    return value


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not an integer") from None


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        word = raw.strip().lower()
        if word not in choices:
            raise SettingError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
        return word
    return parse


def _path(raw: str, name: str) -> Path:
    return Path(os.path.expanduser(raw))


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str, str], Any]
    default: Any
    meaning: str
    kind: str  # shown in the docs table

    def get(self, environ: Optional[Mapping[str, str]] = None) -> Any:
        """The typed value (the default when unset or empty)."""
        raw = (os.environ if environ is None else environ).get(self.name)
        if raw is None or raw.strip() == "":
            return self.default() if callable(self.default) else self.default
        return self.parse(raw, self.name)


def _default_home() -> Path:
    return Path.home() / ".cache" / "ivl3"


HOME = Setting("IVL3_HOME", _path, _default_home, "Folder for the tiny model, the demo dataset, the frame and "
               "length caches and generated host files.", "path (default `~/.cache/ivl3`)")
BLOCK_PLUGINS = Setting("IVL3_BLOCK_PLUGINS", _names, [], "Plugins to keep out: comma list of plugin names; `*` "
                        "blocks every third-party plugin.", "comma list")
TILE_BACKEND = Setting("IVL3_TILE_BACKEND", _choice("auto", "numba", "pil"), "", "The tiler's resampler: `numba` "
                       "(default when installed) or `pil` (Pillow's resize; identical tensors, slower).",
                       "numba or pil")
COMPILE = Setting("IVL3_COMPILE", parse_bool, True, "`0` turns the `ivl3_compile` trainer callback off without "
                  "editing a recipe (the run trains eager).", "yes/no (default yes)")
METEOR_JAR = Setting("IVL3_METEOR_JAR", _path, None, "meteor-1.5.jar to use for METEOR (default: pycocoevalcap's "
                     "copy).", "path")
METRIC_OPTIONS = Setting("IVL3_METRIC_OPTIONS", _json_object, dict, "Options for the ms-swift eval metric "
                         "(`--eval_metric ivl3_summary`), e.g. `{\"language\": \"zh\"}`.", "JSON object")
TEMPLATE_ARGS = Setting("IVL3_TEMPLATE_ARGS", _json_object, dict, "Run settings of named templates, e.g. "
                        "`{\"ivl3_video\": {\"on_overflow\": \"skip\"}}`; `ivl3 train R template.FIELD=VALUE` "
                        "writes it for the recipe's template. Fields: see docs/template.md.", "JSON object")
CALLBACK_ARGS = Setting("IVL3_CALLBACK_ARGS", _json_object, dict, "Run settings of named trainer callbacks, e.g. "
                        "`{\"ivl3_recompute\": {\"layers\": 18}}` (checkpoint only the LLM's first 18 layers); "
                        "`ivl3 train R --plan` writes it, `ivl3 train R callback.NAME.FIELD=VALUE` too.", "JSON object")
LLAMAFACTORY_PYTHON = Setting("IVL3_LLAMAFACTORY_PYTHON", _path, None, "Interpreter that has LLaMA-Factory "
                              "(default: the checkout's `.venv-lf`, else this Python).", "path")
NO_SWIFT_IMPORT_HOOK = Setting("IVL3_NO_SWIFT_IMPORT_HOOK", parse_bool, False, "`1` keeps the start-up hook "
                               "that lets `--custom_register_path ivl3_plugin` name the package from being "
                               "installed (use `--external_plugins <file>` then).", "yes/no (default no)")

# torchrun's own variables, read as defaults of `ivl3 train`'s multi-node flags (a node's launcher often has them)
NODE_RANK = Setting("NODE_RANK", _int, 0, "Default of `ivl3 train --node-rank` (torchrun's variable).", "integer")
MASTER_ADDR = Setting("MASTER_ADDR", lambda raw, name: raw.strip(), None, "Default of `ivl3 train --master-addr` "
                      "(torchrun's variable).", "host name or address")
MASTER_PORT = Setting("MASTER_PORT", _int, 29500, "Default of `ivl3 train --master-port` (torchrun's variable).",
                      "integer (default 29500)")

SETTINGS: Dict[str, Setting] = {s.name: s for s in (
    HOME, BLOCK_PLUGINS, TILE_BACKEND, COMPILE, METEOR_JAR, METRIC_OPTIONS, TEMPLATE_ARGS, CALLBACK_ARGS, LLAMAFACTORY_PYTHON,
    NO_SWIFT_IMPORT_HOOK, NODE_RANK, MASTER_ADDR, MASTER_PORT)}


def home() -> Path:
    return HOME.get()


def markdown_table() -> str:
    """The table in docs/settings.md (a test checks the docs hold exactly this)."""
    rows = ["| variable | type | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.kind} | {s.meaning} |" for s in SETTINGS.values()]
    return "\n".join(rows)
