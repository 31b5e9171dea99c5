"""Built-in recipes: the repository's recipes/ folder."""
from .. import hookimpl
from ..resources import recipes_dir


@hookimpl
def register_recipes(register):
    register("ivl3", recipes_dir())
