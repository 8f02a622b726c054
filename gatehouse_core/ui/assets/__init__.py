"""Files the console ships instead of fetching (the page icon: no icon-font CDN, works offline)."""

from pathlib import Path

PAGE_ICON = str(Path(__file__).with_name("gatehouse.png"))
