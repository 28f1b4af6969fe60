"""The dashboard's files (HTML, CSS, ES modules and the vendored chart library) and the paths
of its pages; `claude_api.server.dashboard` serves them.

Pages and assets hold no data: each page reads it from `/graphql` with the caller's key, so
they are public like the GraphiQL page.
"""

from __future__ import annotations

import re
from pathlib import Path

FILES = Path(__file__).parent / "static"
STATIC_URL = "/dashboard/static"

# `/`, `/tasks`, and `/agents/<name>`, `/skills/<name>`, `/tasks/<id>` (a name may hold '/').
PAGE_PATH = re.compile(r"/|/tasks|/(?:agents|skills|tasks)/.+")


def is_public(method: str, path: str) -> bool:
    """Whether a request is for a page or an asset of the dashboard, which need no key."""
    if method not in ("GET", "HEAD"):
        return False
    return PAGE_PATH.fullmatch(path) is not None or path.startswith(STATIC_URL + "/")
