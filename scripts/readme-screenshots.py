"""Makes docs/screenshots.png (the README's strip) from the browser test's screenshots.

    cargo test --test api browser:: && python3 scripts/readme-screenshots.py   # needs Pillow
"""

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ["02-landing", "04-composer", "06-status-sent", "08-seller-opens-the-button"]
WIDTH, HEIGHT, GAP = 390, 844, 16  # the test's phone, at 1x

strip = Image.new("RGB", (len(SHOTS) * (WIDTH + GAP) - GAP, HEIGHT), "white")
for i, name in enumerate(SHOTS):
    shot = Image.open(ROOT / "test-artifacts" / f"{name}.png").convert("RGB")
    strip.paste(shot.resize((WIDTH, HEIGHT), Image.LANCZOS), (i * (WIDTH + GAP), 0))
strip.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
    ROOT / "docs" / "screenshots.png", optimize=True
)
