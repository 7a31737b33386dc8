-- The feature space the classifier's weights were learned in (`classifier::FEATURE_VERSION`): weight i
-- means something only for the features that hash to i, so a model learned by a build that extracted
-- other features is stale. NULL: nothing learned yet (the first learning records its version). A model
-- learned before this migration counts as version 0, "unknown": learning into it is refused and the
-- gateway does not judge with it until `portcullis learn --reset` clears it and records the current
-- version. Kept in the model's one-row table so the totals and the version travel together (backups).
ALTER TABLE classifier_totals ADD COLUMN feature_version INTEGER CHECK (feature_version >= 0);
UPDATE classifier_totals SET feature_version = 0
 WHERE spam <> 0 OR ham <> 0
    OR EXISTS (SELECT 1 FROM classifier_weights)
    OR EXISTS (SELECT 1 FROM classifier_learned);
