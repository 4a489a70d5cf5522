"""Widgets and display helpers the screens share (fields, tables, type-ahead, times)."""
