"""Video -> frames dataset converter (``ivl3 convert``): decode once, reproducibly, in parallel, resumably."""
from .api import ConvertError, ConvertResult, convert, run_convert, split_for_id
from .sources import DatasetSource, SourceRow

__all__ = ["convert", "run_convert", "ConvertResult", "ConvertError", "split_for_id", "DatasetSource", "SourceRow"]
