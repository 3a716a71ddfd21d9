"""One asset across sources: identity keys, matching, overrides, and keeping the mapping current.

- `identity`: what a coin's name, symbol and id say about it (pure text rules);
- `match`: the matcher, from every known coin, asset and pin to one decision per coin (pure);
- `overrides`: the shipped overrides file (`overrides.json`) read and validated;
- `sync`: the database step the pipeline, the CLI and the admin API run (one transaction).
"""
