"""nst_core: Gatys et al. neural style transfer on VGG19 in TensorFlow, one call per pair.

    from nst_core import stylize
    result = stylize("cat.jpg", "starry_night.jpg", size=512)
    result.save("cat_starry.png")

TensorFlow is imported on first use of ``Stylizer``/``stylize``/``Result``, so option parsing
and image validation (and the CLI's error messages) stay fast.
"""

from typing import Any

__version__ = "0.1.0"  # the one place: setup.py reads it from here
from nst_core.errors import InputError, NSTError, NumericalError, WeightsError
from nst_core.options import StyleOptions

__all__ = ["__version__", "InputError", "NSTError", "NumericalError", "Result", "StyleOptions", "Stylizer",
           "WeightsError", "stylize"]


def __getattr__(name: str) -> Any:
    if name in ("Stylizer", "Result", "stylize"):
        from nst_core import stylizer

        return getattr(stylizer, name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
