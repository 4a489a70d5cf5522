"""Protocol files shipped with wardcrf (`protocol.default_protocol()` names the default)."""
