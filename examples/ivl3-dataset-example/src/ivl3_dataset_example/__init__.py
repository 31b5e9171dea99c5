"""ivl3-dataset-example: a third-party plugin for ivl3-plugin, written as the docs' worked example.

It adds two things through the ``ivl3_plugin`` hooks (see ``plugin.py``):

* a dataset source ``sidecar-folder``: a folder of videos with a ``<stem>.txt``
  beside each, whose optional first line ``clip: START-END`` cuts a clip;
* a template ``ivl3_scene_notes``: InternVL3's video layout with this
  package's own prompt file ``prompts/scene_notes.j2``.
"""
__version__ = "0.1.0"
