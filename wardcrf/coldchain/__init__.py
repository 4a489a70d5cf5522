"""Cold chain: logger files, storage units, lots and kits, custody and the dose gate.

The investigational product travels frozen (dry ice, then a -20 °C unit inside
the isolation area) and changes hands several times before it is thawed at
the bedside. This package keeps that chain auditable:

- `loggers` parses temperature-logger exports (plain CSV, Berlinger
  Fridge-tag 2 L / UL text, Elitech tab-separated) into UTC readings, refusing
  ambiguous or malformed files whole;
- `analysis` finds excursions and unmonitored gaps and computes the mean
  kinetic temperature; pure functions, no database;
- `services` records units, lots and kits, receipts, handovers, readings,
  thaws and dispositions as events and form records;
- `custody` walks one kit's chain and is the pre-dose gate.
"""
