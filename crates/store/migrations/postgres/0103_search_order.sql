-- Search indexes that also hold the keyset tie-breaker, so a page comes straight off an index in
-- order (newest first) with no sort, however many items one sender, kind or status has.

DROP INDEX quarantine_items_by_sender;
DROP INDEX quarantine_items_by_sender_domain;
DROP INDEX quarantine_items_by_kind;
DROP INDEX quarantine_items_by_status;
CREATE INDEX quarantine_items_by_sender ON quarantine_items (sender, received_at_ms, id);
CREATE INDEX quarantine_items_by_sender_domain ON quarantine_items (sender_domain, received_at_ms, id);
CREATE INDEX quarantine_items_by_kind ON quarantine_items (kind, received_at_ms, id);
CREATE INDEX quarantine_items_by_status ON quarantine_items (status, received_at_ms, id);

DROP INDEX tracking_messages_by_sender;
DROP INDEX tracking_messages_by_client;
DROP INDEX tracking_messages_by_verdict;
DROP INDEX tracking_messages_by_message_id;
CREATE INDEX tracking_messages_by_time_id ON tracking_messages (received_at_ms, queue_id);
CREATE INDEX tracking_messages_by_sender ON tracking_messages (sender, received_at_ms, queue_id);
CREATE INDEX tracking_messages_by_client ON tracking_messages (client_ip, received_at_ms, queue_id);
CREATE INDEX tracking_messages_by_verdict ON tracking_messages (verdict, received_at_ms, queue_id);
CREATE INDEX tracking_messages_by_message_id ON tracking_messages (message_id, received_at_ms, queue_id);
