-- Each node's queue-id tag (`spool::NodeTag`, the top 10 of an id's last 20 bits): a number 0..1023 that no
-- other node sharing this store holds, so no two nodes can mint the same queue id. Claimed by the node at
-- start (`Store::node_claim_tag`) and kept under its name across restarts; forgetting the node frees it.
-- NULL: a node known before this migration, which claims one on its next start.
ALTER TABLE nodes ADD COLUMN tag INTEGER CHECK (tag BETWEEN 0 AND 1023);
CREATE UNIQUE INDEX nodes_by_tag ON nodes (tag);
