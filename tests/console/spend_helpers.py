"""Reading what the spend pages sent: Plotly figures by key, and a download button's file."""

from __future__ import annotations

import gc
import json
from typing import Any

from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The figure JSON of the plotly chart with this key."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(f"-{key}") or key in chart.proto.id:
            return json.loads(chart.proto.spec)
    raise KeyError(f"no plotly chart with key {key!r}")


def traces(at: AppTest, key: str) -> dict[str, Any]:
    return {t.get("name"): t for t in figure(at, key)["data"]}


def download(at: AppTest, key: str) -> bytes:
    """The bytes a download button would send: AppTest keeps them in its in-memory media
    storage, which outlives the run (there is no public accessor)."""
    (button,) = [b for b in at.get("download_button") if key in b.proto.id]
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    for storage in gc.get_objects():
        if isinstance(storage, MemoryMediaFileStorage):
            found = getattr(storage, "_files_by_id", {}).get(file_id)
            if found is not None:
                return found.content
    raise KeyError(f"the file of download button {key!r} is gone")
