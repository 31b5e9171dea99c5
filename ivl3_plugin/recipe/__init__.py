"""Recipes beside the pipeline: model size, tuner, ZeRO stage, batch split, and the launch.

``arch`` (sizes as numbers) -> ``memory`` (predicted peak per GPU) -> ``plan`` (choice) ->
``recipe`` (ms-swift config + metadata, validation) -> ``launch`` (argv/env, sbatch); ``compile``
(regional torch.compile of the layers, the recipes' ``ivl3_compile`` callback) beside them.
Nothing here imports a host.
"""
