"""The history as Hive-partitioned Parquet, for engines that read files (Spark, Trino, DuckDB,
ClickHouse): `export_history` (`history`) writes `source=S/date=YYYY-MM-DD/part-0.parquet`,
one file per source and UTC day, each replaced atomically (`files`).
"""
