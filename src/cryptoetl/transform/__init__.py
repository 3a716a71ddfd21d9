"""Pure transforms: one source record -> a unified record, or a rejection with its reason.

No I/O here. `common` holds the parsing every source shares (numbers, timestamps, reasons,
locators); each source has its own module with its pydantic model of a record.
"""
