"""The hooks: what this package adds to ivl3-plugin.

ivl3-plugin finds this module through the entry point in ``pyproject.toml``
and calls every ``@hookimpl`` function in it with a ``register`` callback.
"""
from pathlib import Path

from ivl3_plugin.api import TemplateSpec, hookimpl

from .source import SidecarFolder

SOURCE_NAME = "sidecar-folder"
TEMPLATE_NAME = "ivl3_scene_notes"
PROMPT_DIR = Path(__file__).parent / "prompts"


@hookimpl
def register_dataset_sources(register):
    register(SOURCE_NAME, SidecarFolder())


@hookimpl
def register_templates(register):
    # prompt="scene_notes" is prompts/scene_notes.j2 in this package.
    register(TEMPLATE_NAME, TemplateSpec(name=TEMPLATE_NAME, prompt="scene_notes", prompt_dir=PROMPT_DIR,
                                         timestamps=True))
