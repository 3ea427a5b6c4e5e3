-- 0001 core schema: tenants, identities, billing, policies, usage, rate limits, audit and ingestion logs.
--
-- Every table owned by an organization carries organization_id as the first column of its primary key, of its
-- unique keys and of its foreign keys to other tenant tables, so the schema can be distributed by organization
-- (Citus: create_distributed_table(..., 'organization_id')) when one server is outgrown. Global tables (users,
-- plans) are small and can become reference tables.

DO $$
BEGIN
    -- gen_random_uuid() is built in from PostgreSQL 13; 12 needs pgcrypto.
    IF current_setting('server_version_num')::int < 130000 THEN
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
    END IF;
END
$$;

CREATE TABLE plans (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    monthly_audit_quota   integer CHECK (monthly_audit_quota >= 0),      -- NULL: unlimited
    requests_per_minute   integer NOT NULL CHECK (requests_per_minute > 0),
    storage_quota_bytes   bigint CHECK (storage_quota_bytes >= 0),       -- NULL: unlimited
    seats                 integer CHECK (seats > 0),                     -- NULL: unlimited
    sort_order            integer NOT NULL DEFAULT 0
);

INSERT INTO plans (id, name, monthly_audit_quota, requests_per_minute, storage_quota_bytes, seats, sort_order) VALUES
    ('free',       'Free',       100,    60,   1073741824,      3,    0),
    ('pro',        'Pro',        5000,   600,  107374182400,    25,   1),
    ('enterprise', 'Enterprise', NULL,   3000, 1099511627776,   NULL, 2);

CREATE TABLE organizations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_id           text UNIQUE,                 -- NULL for personal organizations, which Clerk does not know
    name               text NOT NULL,
    slug               text NOT NULL UNIQUE,
    image_url          text,
    is_personal        boolean NOT NULL DEFAULT false,
    created_by_clerk_user_id text,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    clerk_updated_at   timestamptz,                 -- Clerk's updated_at of the last applied event
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);

CREATE TABLE users (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_id                  text NOT NULL UNIQUE,
    email                     text,                 -- NULL for phone-only sign-ups
    first_name                text,
    last_name                 text,
    image_url                 text,
    personal_organization_id  uuid REFERENCES organizations (id),
    clerk_updated_at          timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz
);
CREATE INDEX users_email_idx ON users (lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE organization_memberships (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    user_id           uuid NOT NULL REFERENCES users (id),
    clerk_id          text,                         -- NULL for personal-organization ownership
    role              text NOT NULL,                -- 'admin', 'member' or a custom 'org:<key>'
    clerk_updated_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,                  -- set when the member leaves, is removed or deleted
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_memberships_user_idx ON organization_memberships (user_id) WHERE ended_at IS NULL;

CREATE TABLE invitations (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    clerk_id          text NOT NULL,
    email_address     text NOT NULL,
    role              text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
    clerk_updated_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, clerk_id)
);

CREATE TABLE subscriptions (
    organization_id           uuid PRIMARY KEY REFERENCES organizations (id),
    plan_id                   text NOT NULL REFERENCES plans (id),
    status                    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'past_due', 'canceled')),
    -- The seam for a payment provider (Stripe): its name and ids, kept in step by its webhooks.
    provider                  text,
    provider_customer_id      text,
    provider_subscription_id  text,
    current_period_start      timestamptz NOT NULL DEFAULT date_trunc('month', now()),
    current_period_end        timestamptz NOT NULL DEFAULT date_trunc('month', now()) + interval '1 month',
    cancel_at_period_end      boolean NOT NULL DEFAULT false,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE policies (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    title             text NOT NULL CHECK (length(btrim(title)) > 0),
    content           text NOT NULL,
    department        text,                         -- NULL: applies to every department
    rules             jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active         boolean NOT NULL DEFAULT true,
    created_by        uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX policies_department_idx ON policies (organization_id, department, created_at DESC, id DESC);

-- Audits counted per organization per calendar month (UTC); month_year is the month's first day.
CREATE TABLE audit_usage (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    month_year        date NOT NULL CHECK (extract(day FROM month_year) = 1),
    count             integer NOT NULL DEFAULT 0 CHECK (count >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, month_year)
);

-- Fixed-window request counters. bucket_key names the limit and who it applies to; organization_id is set for
-- organization buckets and NULL for ones keyed by client address (the webhook, unauthenticated routes).
CREATE TABLE rate_limit_buckets (
    bucket_key        text PRIMARY KEY,
    organization_id   uuid REFERENCES organizations (id),
    request_count     integer NOT NULL DEFAULT 0,
    window_reset_at   timestamptz NOT NULL
);
CREATE INDEX rate_limit_buckets_reset_idx ON rate_limit_buckets (window_reset_at);

-- One row per audit, partitioned by month so retention detaches whole partitions instead of a long DELETE.
CREATE TABLE audit_logs (
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id            uuid REFERENCES users (id),
    request_id         text,
    context            jsonb NOT NULL DEFAULT '{}'::jsonb,
    formula_count      integer NOT NULL CHECK (formula_count >= 0),
    findings_count     integer NOT NULL DEFAULT 0,
    findings_summary   jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"critical": n, "high": n, ...}
    risk_score         integer NOT NULL DEFAULT 0,
    results            jsonb NOT NULL DEFAULT '[]'::jsonb,
    duration_ms        integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX audit_logs_org_created_idx ON audit_logs (organization_id, created_at DESC, id DESC);
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at DESC);

-- Rows that arrive for a month with no partition yet land here instead of failing; maintenance creates
-- partitions ahead of time so it stays empty.
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;

CREATE TABLE ingestion_logs (
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    policy_id         uuid,
    user_id           uuid REFERENCES users (id),
    request_id        text,
    status            text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    rules_found       integer NOT NULL DEFAULT 0,
    content_bytes     integer NOT NULL DEFAULT 0,
    duration_ms       integer NOT NULL DEFAULT 0,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX ingestion_logs_org_created_idx ON ingestion_logs (organization_id, created_at DESC);
