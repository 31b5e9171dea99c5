"""File form of the ms-swift plugin: ``swift sft --external_plugins <path to this file>``.

Works with every ms-swift version, with or without the start-up import hook.
"""
from ivl3_plugin.hosts.swift.install import install

install()
