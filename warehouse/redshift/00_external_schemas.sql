-- Redshift Serverless: where the warehouse reads from. `${...}` placeholders are filled per stage by
-- `pipeline.warehouse.ddl.render` (the role is the workgroup's streaming-ingestion role).
-- Streaming ingestion: every Kinesis stream of the stage becomes a relation of this schema.
CREATE EXTERNAL SCHEMA IF NOT EXISTS kinesis_streams
FROM KINESIS
IAM_ROLE '${redshift_role_arn}';

-- Redshift Spectrum over the lake's Glue tables: full history, late events included.
CREATE EXTERNAL SCHEMA IF NOT EXISTS lake
FROM DATA CATALOG DATABASE '${glue_database}'
IAM_ROLE '${redshift_role_arn}';
