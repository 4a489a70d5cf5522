"""The cold-chain screens: custody of the product, transfers, loggers, excursions."""
