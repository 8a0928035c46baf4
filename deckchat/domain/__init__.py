"""Domain logic: plain arguments in, models or dicts out; no Flask request state here."""
