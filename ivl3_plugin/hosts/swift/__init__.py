"""ms-swift host adapter (``host.py`` is the :class:`~ivl3_plugin.hosts.protocol.Host`; docs/hosts.md).

Kept empty: the start-up hook (``import_hook.py``) is imported through this package in every
Python process, so nothing here may import ms-swift.
"""
