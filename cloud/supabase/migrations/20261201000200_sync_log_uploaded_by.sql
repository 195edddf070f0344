-- Replica takeover (issue 9 item 4): when a lane has not been seen by any lane for
-- CLOUD_TAKEOVER_AFTER_S, one of its peers uploads the messages it holds of that lane on its
-- behalf. Such a message keeps its origin's terminalId and seq and carries
-- "uploadedBy": "<the covering lane>"; the sync log records who sent it.
--
-- One sync_log row per (store, terminal, uploaded_by) of a request: uploaded_by is null for a
-- lane's own uploads, and names the covering lane otherwise. Nothing else changes: the message
-- is the same message whoever uploads it, so an upload by its origin and another by a covering
-- lane (in either order) store it once and answer `duplicate` the second time.

alter table public.sync_log
  add column uploaded_by text null
    check (uploaded_by is null
           or (uploaded_by ~ '^[A-Za-z0-9_-]{1,32}$' and uploaded_by is distinct from terminal_id));

comment on column public.sync_log.uploaded_by is
  'The lane that uploaded these messages on behalf of terminal_id (replica takeover); null when terminal_id uploaded them itself.';
