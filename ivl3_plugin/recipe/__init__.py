"""Recipes beside the pipeline: model size, tuner, ZeRO stage, batch split, and the launch.

``arch`` (sizes as numbers) -> ``memory`` (predicted peak per GPU) -> ``plan`` (choice) ->
``recipe`` (ms-swift config + metadata, validation) -> ``launch`` (argv/env, sbatch).
Nothing here imports a host.
"""
