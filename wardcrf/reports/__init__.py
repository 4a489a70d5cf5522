"""Reports computed from recorded values: outcomes (the paper's analyses), safety, audit casebook.

Reports read the same `wardcrf.exports.dataset.Dataset` as the exports, so
they run on a ward or a hub. numpy/scipy (statistics) and fpdf2 (PDF) are
imported inside the functions that use them, never at TUI start-up.
"""
