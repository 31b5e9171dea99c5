"""Built-in templates: InternVL3 video summary (one layout for training and inference).

``ivl3_video``: ``Frame{i}: <img>...</img>`` lines; ``ivl3_video_ts``: the same with
``Frame{i} ({t:.1f}s): `` labels (needs ``--remove_unused_columns false`` for converted rows).
"""
from .. import hookimpl
from ..template.spec import TemplateSpec

VIDEO_TEMPLATE = "ivl3_video"
VIDEO_TEMPLATE_TIMESTAMPS = "ivl3_video_ts"


@hookimpl
def register_templates(register):
    register(VIDEO_TEMPLATE, TemplateSpec(name=VIDEO_TEMPLATE))
    register(VIDEO_TEMPLATE_TIMESTAMPS, TemplateSpec(name=VIDEO_TEMPLATE_TIMESTAMPS, timestamps=True))
