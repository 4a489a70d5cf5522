"""Exports of a site's (or hub's) data in the formats other tools read.

Every exporter reads the same read model (`dataset.Dataset`) built over the
event log and the `records` projection, never over workflow-specific tables
alone, so an export works identically on a ward laptop and on a hub whose
records arrived from several wards. Exports are reads: permission
``export.data`` (``export.plaintext`` for the unencrypted SQLite copy, which
is also the only export that records an event, because it leaves encryption
behind).

Modules: `dataset` (read model), `csv_export`, `odm`, `sdtm`, `plaintext`.
Heavy imports (xml, csv writers) stay inside these modules, which the TUI
never imports at start-up.
"""
