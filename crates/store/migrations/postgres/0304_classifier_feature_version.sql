-- The feature space the classifier's weights were learned in: see migrations/sqlite/0304.
ALTER TABLE classifier_totals ADD COLUMN feature_version BIGINT CHECK (feature_version >= 0);
UPDATE classifier_totals SET feature_version = 0
 WHERE spam <> 0 OR ham <> 0
    OR EXISTS (SELECT 1 FROM classifier_weights)
    OR EXISTS (SELECT 1 FROM classifier_learned);
