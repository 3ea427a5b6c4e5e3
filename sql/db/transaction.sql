-- name: begin_transaction
-- Transaction-local settings, set in one round trip; `true` makes each one end with the transaction.
SELECT set_config('statement_timeout', %(statement_timeout)s, true);
