-- 0002 Clerk webhooks: the record of delivered events (exactly-once), and what ordering memberships needs.
--
-- Svix delivers at least once and keeps the svix-id across retries. The handler inserts the id in the same
-- transaction as the changes the event makes: a committed id is never applied again, and a failed one left no row,
-- so Svix's retry applies it. Ids are pruned after 30 days (prune_webhook_events); Svix stops retrying long before.
CREATE TABLE webhook_events (
    svix_id           text PRIMARY KEY,
    event_type        text NOT NULL,
    clerk_object_id   text,                         -- data.id: the user, organization, membership or invitation
    handled           boolean NOT NULL,             -- false: a type we do not sync, acknowledged and recorded
    -- The whole event, kept for ignored types only: enough to replay them if we start handling the type, while
    -- synced events (whose data is in the tables anyway) leave no second copy of anyone's email address.
    payload           jsonb,
    event_timestamp   timestamptz,                  -- the envelope's timestamp: when Clerk emitted the event
    received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);

-- A user removed from an organization and added again gets a new Clerk membership id, and both memberships' events
-- may arrive in any order. The row of an (organization, user) pair holds the latest membership, the one created
-- last in Clerk: events of an older membership are ignored once a newer one is stored.
-- clerk_deleted tells a membership deleted in Clerk (final: no later event about it applies) from one ended because
-- its user or organization was deleted (whose role still follows the newest event, so every order ends the same).
ALTER TABLE organization_memberships
    ADD COLUMN clerk_created_at timestamptz,
    ADD COLUMN clerk_deleted boolean NOT NULL DEFAULT false;
