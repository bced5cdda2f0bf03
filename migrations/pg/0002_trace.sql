-- 0002_trace.sql (PostgreSQL): a job's W3C trace context, as migrations/0004_trace.sql.
ALTER TABLE jobs ADD COLUMN traceparent text;
ALTER TABLE jobs ADD COLUMN tracestate text;
