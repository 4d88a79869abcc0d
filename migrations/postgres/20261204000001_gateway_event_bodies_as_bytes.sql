-- The inbox keeps every webhook body as the exact bytes received, like the evidence: a body
-- that is not valid UTF-8, or holds a NUL, must come back byte for byte. Bodies kept so far
-- were text, so their UTF-8 encoding is their bytes.
ALTER TABLE gateway_events ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8');
