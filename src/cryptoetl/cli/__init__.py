"""The `cryptoetl` command (`main`), and what it draws on a terminal (`progress`)."""
