"""Protocol files shipped with wardcrf (MEXCOVID is the default)."""
