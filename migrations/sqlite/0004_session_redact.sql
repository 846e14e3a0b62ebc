-- Redaction chosen per call at create: the kinds of personal data removed from its event payloads
-- before they are stored, as bits (card 1, email 2, phone 4, ssn 8). NULL: the service's REDACT.
-- Set once, at create.
ALTER TABLE sessions ADD COLUMN redact INTEGER CHECK (redact IS NULL OR redact BETWEEN 0 AND 15);
