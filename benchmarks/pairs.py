"""The benchmark pairs: the README demo pair plus others from ../shared/images."""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

PAIRS: dict[str, tuple[Path, Path]] = {
    "chelsea-starry": (SAMPLES / "content" / "chelsea.jpg", SAMPLES / "style" / "starry_night.jpg"),
    "astronaut-scream": (SHARED / "content" / "astronaut.png", SHARED / "style" / "the_scream.jpg"),
    "coffee-matisse": (SHARED / "content" / "coffee.png", SHARED / "style" / "woman-with-hat-matisse.jpg"),
    "rocket-shipwreck": (SHARED / "content" / "rocket.jpg", SHARED / "style" / "shipwreck.jpg"),
    # fast mode's held-out contents with the style its benchmark network learns (highres.py --model)
    "astronaut-starry": (SHARED / "content" / "astronaut.png", SAMPLES / "style" / "starry_night.jpg"),
    "rocket-starry": (SHARED / "content" / "rocket.jpg", SAMPLES / "style" / "starry_night.jpg"),
}
