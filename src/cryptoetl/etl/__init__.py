"""Running ETL: one run of the sources (pipeline, one source's run, prepare), who owns a run
and how its death is noticed (owner, reaper), runs in the background, the leader lease and the
scheduled service. Above `sources`, `db` and `assets`; the API reaches it only through the
`cryptoetl.api.etl.EtlControl` protocol."""
