"""LLaMA-Factory host adapter (``host.py`` is the :class:`~ivl3_plugin.hosts.protocol.Host`; docs/hosts.md).

``launch.py`` and ``datasets.py`` run in the ms-swift environment too; ``install.py``, ``mm.py``
and ``run.py`` only where llamafactory is installed (``.venv-lf``).
"""
