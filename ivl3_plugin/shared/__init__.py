"""The lower layer every pipeline stage may use: facts, frame sampling, prompt rendering, files.

It imports nothing of ours above :mod:`ivl3_plugin.settings` / :mod:`ivl3_plugin.resources`, so
``convert`` and ``template`` share the sampling rule and the prompt text without importing each
other (docs/architecture.md).
"""
