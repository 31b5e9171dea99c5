"""Built-in tiler: InternVL's dynamic-resolution tiling, as preprocessor ``internvl_dynamic``."""
from .. import hookimpl


@hookimpl
def register_preprocessors(register):
    from ..tile import PREPROCESSOR_NAME, tile_image

    register(PREPROCESSOR_NAME, tile_image)
