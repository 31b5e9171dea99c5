"""Our templates as ms-swift templates (first version: InternVL3 chat layout, hf checkpoints)."""
from __future__ import annotations

from typing import List

INTERNVL3_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


def template_metas(spec) -> List:
    from swift.template.templates.internvl import InternvlhfTemplate
    from swift.template.templates.utils import ChatmlTemplateMeta

    return [ChatmlTemplateMeta(spec.name, template_cls=InternvlhfTemplate, default_system=spec.system or INTERNVL3_SYSTEM)]
