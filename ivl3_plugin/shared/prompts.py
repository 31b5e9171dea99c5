"""Instruction text from Jinja prompt files (``templates/<name>.j2``).

The converter and the template render the same file, so the words a model
is trained on are the words it is asked with at inference.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Optional

from ..resources import templates_dir

# InternVL's image markup and the hosts' media tags: in an answer, the tokenizer reads them as image slots
# (a sampled summary from a barely trained model can contain them), so the frames no longer line up
IMAGE_MARKUP = ("<IMG_CONTEXT>", "<img>", "</img>", "<video>", "<image>")


def image_markup_in(text: str) -> List[str]:
    """The image markup strings found in ``text`` (empty when it is plain text)."""
    return [m for m in IMAGE_MARKUP if m in text]


def prompt_dirs(extra: Optional[Path] = None) -> List[Path]:
    dirs = [Path(extra)] if extra else []
    return dirs + [templates_dir()]


@lru_cache(maxsize=64)
def _environment(dirs: tuple):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def available_prompts(extra: Optional[Path] = None) -> List[str]:
    names = set()
    for d in prompt_dirs(extra):
        names.update(p.stem for p in Path(d).glob("*.j2"))
    return sorted(names)


def render_instruction(prompt: str = "concise", prompt_dir: Optional[Path] = None, **context) -> str:
    """Render ``<prompt>.j2``; context keys such as ``num_frames``/``duration`` are optional."""
    env = _environment(tuple(str(d) for d in prompt_dirs(prompt_dir)))
    try:
        tpl = env.get_template(f"{prompt}.j2")
    except Exception as exc:
        raise ValueError(
            f"no prompt file {prompt}.j2 in {[str(d) for d in prompt_dirs(prompt_dir)]}; "
            f"available: {available_prompts(prompt_dir)}"
        ) from exc
    ctx = {"num_frames": None, "duration": None, "title": None}
    ctx.update(context)
    return tpl.render(**ctx).strip()
