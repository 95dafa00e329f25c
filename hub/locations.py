"""Where a model lives: a local folder, or a Hub repo written `hf-hub:org/name[@revision]` (parsed here only)."""
from __future__ import annotations

from dataclasses import dataclass

HUB_PREFIX = "hf-hub:"


@dataclass(frozen=True)
class HubRef:
    """A model on the Hugging Face Hub, from a location written `hf-hub:org/name[@revision]`."""
    repo_id: str
    revision: str | None = None

    @property
    def location(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def hub_ref(location: str) -> HubRef | None:
    """The Hub repo a model location names; None for anything else (a local folder, a timm name)."""
    if not location.startswith(HUB_PREFIX):
        return None
    repo_id, _, revision = location[len(HUB_PREFIX):].partition("@")
    return HubRef(repo_id, revision or None)
