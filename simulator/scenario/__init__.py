"""The scenario stage: the file format (pydantic, frozen), loading and validation, units,
limits, deployment specs, variants and the JSON Schema. It reads files and nothing of the
engine, the report or the studies."""
