-- 0004 billing: organization admins choose their plan through the API, which runs as the tenant role.
GRANT INSERT, UPDATE ON subscriptions TO sheetbrain_tenant;
