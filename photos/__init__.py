"""Photo evidence: import, validate, hash, store, preview (``wardcrf.photos``)."""
