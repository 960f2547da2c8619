-- The id of the run that follows a continuous optimization run (`parameters.rebalance.continuous`):
-- derived from the run's id, UUID-shaped, so workers side by side queue one successor only.
CREATE OR REPLACE FUNCTION next_run_id(run_id text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT regexp_replace(md5(run_id || '/next'), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5')
$$;
