"""nst_core: Gatys et al. neural style transfer on VGG19 in TensorFlow, one call per pair.

    from nst_core import stylize
    result = stylize("cat.jpg", "starry_night.jpg", size=512)
    result.save("cat_starry.png")

TensorFlow is imported on first use of ``Stylizer``/``stylize``/``Result``, so option parsing
and image validation (and the CLI's error messages) stay fast.
"""

from typing import Any

from nst_core.errors import InputError, NSTError, NumericalError, WeightsError
from nst_core.options import StyleOptions

__all__ = ["InputError", "NSTError", "NumericalError", "Result", "StyleOptions", "Stylizer", "WeightsError",
           "stylize"]


def __getattr__(name: str) -> Any:
    if name in ("Stylizer", "Result", "stylize"):
        from nst_core import stylizer

        return getattr(stylizer, name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
