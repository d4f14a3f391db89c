"""nst_core: Gatys et al. neural style transfer on VGG19 in TensorFlow, one call per pair.

    from nst_core import stylize
    result = stylize("cat.jpg", "starry_night.jpg", size=512)
    result.save("cat_starry.png")
"""

from nst_core.errors import InputError, NSTError, NumericalError, WeightsError
from nst_core.options import StyleOptions
from nst_core.stylizer import Result, Stylizer, stylize

__all__ = ["InputError", "NSTError", "NumericalError", "Result", "StyleOptions", "Stylizer", "WeightsError",
           "stylize"]
