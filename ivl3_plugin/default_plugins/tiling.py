"""Built-in tiler: InternVL's dynamic-resolution tiling, as preprocessor ``internvl_dynamic``.

The registered function imports :mod:`ivl3_plugin.tile` (and so torch) only when first called,
so loading plugins (``ivl3 plugins``, every CLI start) stays fast and works without torch.
"""
from .. import hookimpl

NAME = "internvl_dynamic"  # == ivl3_plugin.tile.PREPROCESSOR_NAME


def internvl_dynamic(image, **options):
    """Tile one image like InternVL; same arguments and result as :func:`ivl3_plugin.tile.tile_image`."""
    from ..tile import tile_image

    return tile_image(image, **options)


@hookimpl
def register_preprocessors(register):
    register(NAME, internvl_dynamic)
