"""Video -> frames dataset converter (``ivl3 convert``): decode once, reproducibly, in parallel, resumably."""
from .api import ConvertResult, convert, run_convert, split_of
from .sources import DatasetSource, SourceRow

__all__ = ["convert", "run_convert", "ConvertResult", "split_of", "DatasetSource", "SourceRow"]
