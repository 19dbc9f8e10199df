"""Warehouse SQL: Athena DDL generated from the Avro schemas, the shipped views, the local SQL engine."""
