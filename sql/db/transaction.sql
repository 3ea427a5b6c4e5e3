-- name: begin_transaction
-- Transaction-local settings, set in one round trip; `true` makes each one end with the transaction.
SELECT set_config('statement_timeout', %(statement_timeout)s, true);

-- name: begin_tenant_transaction
-- As begin_transaction, and the tenant role and organization that row-level security checks.
SELECT set_config('statement_timeout', %(statement_timeout)s, true),
       set_config('role', 'sheetbrain_tenant', true),
       set_config('app.organization_id', %(organization_id)s, true);

-- name: set_session_statement_timeout
-- The statement timeout for the whole session, for statements run outside an explicit transaction.
SELECT set_config('statement_timeout', %(statement_timeout)s, false);
