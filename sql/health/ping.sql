-- name: ping
-- The cheapest statement the server must actually answer.
SELECT 1 AS ok;
