"""`/api/docs`: Swagger UI served from this origin, so it renders under the console's CSP.

FastAPI's own docs page loads Swagger UI from a CDN and starts it with an inline script; the
console's Content-Security-Policy (web/headers.py: this origin only, no inline scripts) blocks
both, which left the page blank. Here the assets come from the `swagger-ui-py` package (it ships
Swagger UI's dist files) and the start-up script is a file of ours, so the CSP stays as strict
for this path as for every other.
"""

from __future__ import annotations

import html
import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

INIT_SCRIPT = Path(__file__).with_name("assets") / "docs-init.js"
# The only files the page needs (name → media type): nothing else of the package is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
CACHE = {"Cache-Control": "public, max-age=86400"}


@cache
def swagger_ui_dir() -> Path | None:
    """Swagger UI's dist folder inside the installed `swagger-ui-py` (not imported: data only)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def page(root: str, title: str) -> str:
    openapi = f"{root}/v1/openapi.json"
    if swagger_ui_dir() is None:
        return (
            f"<!doctype html><title>{html.escape(title)}</title><p>The interactive docs need "
            "the swagger-ui-py package (requirements.txt). The OpenAPI document is at "
            f'<a href="{html.escape(openapi)}">{html.escape(openapi)}</a>.</p>'
        )
    assets = f"{root}/docs/assets"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="icon" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(openapi)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{root}/docs/init.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(page(root, f"{request.app.title} - docs"))


@router.get("/docs/init.js")
async def init_script() -> FileResponse:
    return FileResponse(INIT_SCRIPT, media_type="text/javascript", headers=CACHE)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    folder = swagger_ui_dir()
    if name not in ASSETS or folder is None:
        return Response(status_code=404)
    return FileResponse(folder / name, media_type=ASSETS[name], headers=CACHE)
