"""The S3 data lake: zones and key layout, the exactly-once Parquet writer, readers, Kappa replay."""
