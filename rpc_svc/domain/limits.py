"""The default bounds of groups (the settings' defaults: rpc_svc.config)."""

from __future__ import annotations

DEFAULT_MAX_MEMBERS = 1000  # members of a group (IM_GROUP_MAX_MEMBERS)
DEFAULT_MAX_GROUPS = 500  # groups of a user (IM_USER_MAX_GROUPS)
