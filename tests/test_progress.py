"""The shared progress line: scale and tiles from the trace entry; a log gets a line per mark."""

import io

from nst_core import progress

ENTRY = {"step": 3, "scale": 1, "height": 171, "width": 256, "stage": "full", "content": 0.5, "style": 0.03125,
         "tv": 0.004, "total": 1.0}


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_scale_text_says_which_scale_and_its_width_x_height():
    assert progress.scale_text(ENTRY, 3) == "scale 2/3 256x171"
    assert progress.scale_text({**ENTRY, "stage": "refine", "scale": 2}, 3) == "scale 3/3 256x171 refine"


def test_tiles_shown_when_present():
    assert progress.scale_text({**ENTRY, "tiles": 4}, 3).endswith(" tiles 4")
    assert progress.scale_text({**ENTRY, "tiles": [2, 3]}, 3).endswith(" tiles 2x3")
    assert "tiles" not in progress.scale_text({**ENTRY, "tiles": 1}, 3)


def test_log_lines_every_tenth_first_last_and_marks():
    log = _Log()
    bar = progress.ProgressBar(100, stream=log)
    for step in range(1, 101):
        bar.update(step, "x", mark=step == 55)
    steps = [int(line.split("] ")[1].split("/")[0]) for line in log.getvalue().splitlines()]
    assert steps == [1, 10, 20, 30, 40, 50, 55, 60, 70, 80, 90, 100]
    quiet = _Log()
    progress.ProgressBar(10, quiet=True, stream=quiet).update(10, "x")
    assert quiet.getvalue() == ""
