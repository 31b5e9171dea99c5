"""Built-in template: InternVL3 video summary (one layout for training and inference)."""
from .. import hookimpl
from ..template.spec import TemplateSpec

VIDEO_TEMPLATE = "ivl3_video"


@hookimpl
def register_templates(register):
    register(VIDEO_TEMPLATE, TemplateSpec(name=VIDEO_TEMPLATE))
