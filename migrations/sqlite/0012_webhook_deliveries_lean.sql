-- Webhook deliveries keep two indexes fewer (issue 22: ingest with an endpoint on every event).
-- The fan-out writes a message and a delivery per change on the one writer, and each index is
-- one more b-tree insert there and one more page in the commit: with an endpoint subscribed to
-- `event.appended`, single-event ingest ran at 0.6-0.7x its rate without webhooks.
-- A delivery's `created_at` is its message's, so retention and recovery find deliveries through
-- the messages' `created_at` index and each delivery's primary key (endpoint, order); "is this
-- message still named by a delivery" looks up that key for each endpoint (endpoints are few, and
-- an endpoint's deliveries are deleted with it).
DROP INDEX webhook_deliveries_created;
DROP INDEX webhook_deliveries_ord;
