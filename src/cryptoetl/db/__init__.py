"""Database access: the pool, migrations, the embedded server, and query modules.

Query modules take a connection and never open transactions; the caller owns them.
"""
