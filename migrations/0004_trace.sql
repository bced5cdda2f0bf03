-- 0004_trace.sql: a job's W3C trace context (traceparent, tracestate), given at submit and
-- handed to every attempt: TRACEPARENT in a command's environment, a header of a webhook
-- delivery, fields of a fetched job. NULL: none.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
ALTER TABLE jobs ADD COLUMN tracestate TEXT;
