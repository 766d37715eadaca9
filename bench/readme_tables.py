"""Copy the committed benchmark tables into README.md between their marker comments."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for md in sorted((ROOT / "bench" / "results").glob("*.md")):
        name = md.stem
        start, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
        if start not in text:
            continue
        block = f"{start}\n{md.read_text().strip()}\n{end}"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _, block=block: block, text)
    readme.write_text(text)


if __name__ == "__main__":
    main()
