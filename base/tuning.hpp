#pragma once
/// Every tunable of lanesync in one place (in the spirit of LiteCore's ReplicatorTuning.hh).
/// Values a store's IT person may change live in the env file (conf/config.hpp);
/// these are the engineering limits behind them.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace lanesync::tuning {

using namespace std::chrono_literals;

// ---- outbox -------------------------------------------------------------------------------
/// Most write requests folded into one transaction (one fsync) by the outbox writer.
inline constexpr std::size_t group_commit_max_requests = 1024;
/// SQLite busy timeout for every connection; the CLI and the agent share the file in WAL mode.
inline constexpr int sqlite_busy_timeout_ms = 10'000;
/// Statement journals stay in memory up to 1 GiB, more than any request can touch (a
/// 500-message batch publish, a 16 MiB replica frame): in practice never spilled to a temp
/// file (SQLite's default spills past 64 KiB). Inside a request's savepoint each INSERT
/// journals the pages it touches, ~6 MB for a 256-message replica batch: with the default,
/// storing one message wrote ~25 KB to a temp file. An 8 MiB threshold was tried: a request
/// whose journal passed it failed with SQLITE_FULL ("database or disk is full") on SQLite 3.40
/// with the disk far from full (a 5,000-message publish_batch on a 200 MB outbox). -1 (never
/// spill, per the documentation) measured as slow as the default here. The journal lives only
/// while one request runs; freed when its savepoint ends (outbox/sqlite.cpp).
///
/// SQLite allocates a memory journal in chunks of the spill size, so each request that opens
/// one mallocs 1 GiB (untouched pages cost nothing with glibc). The sanitizers' allocators map
/// and clear shadow memory for every such block (128 MiB for ASan), some 30 ms per request,
/// which made the checking builds' outbox tests 70 times slower than the main build's: there
/// the threshold is 64 MiB, still far above what any test's request journals.
#if defined(LANESYNC_CHECKING_BUILD)
inline constexpr int sqlite_statement_journal_spill_bytes = 64 << 20;
#else
inline constexpr int sqlite_statement_journal_spill_bytes = 1 << 30;
#endif
/// After a write failed with "database or disk is full", the outbox counts as full (/healthz
/// 503 "disk_full", lanesync_outbox_disk_full 1) until its folder's file system has this much
/// free again: a small write that still fits (an ack mark into the WAL) does not clear it.
inline constexpr std::uint64_t outbox_free_space_after_full = 2u << 20;

// ---- peer protocol ------------------------------------------------------------------------
/// Highest peer protocol version this lane speaks, offered in the hello frame
/// (protocol/version.hpp; docs/protocol.md "Versions").
/// Version 3 adds the catalog frames (catalog_have, catalog); v1 and v2 peers never see them.
inline constexpr int peer_protocol_version = 3;
/// Lowest version this lane still serves and falls back to (a v1 lane's hello is served as v1).
inline constexpr int peer_protocol_min_version = 1;
/// Largest WebSocket message accepted from a peer (a batch frame).
inline constexpr std::size_t peer_max_frame_bytes = 16u << 20;
/// Most messages in one batch frame.
inline constexpr std::size_t peer_batch_max_messages = 256;
/// Soft cap on the encoded size of one batch frame (a batch stops growing past this).
inline constexpr std::size_t peer_batch_max_bytes = 4u << 20;
/// Batches sent but not yet acked on one link. Bounds memory held for a slow peer.
inline constexpr std::size_t peer_inflight_batches = 4;
/// Frames queued for writing on one link before send() reports back-pressure: the sender stops
/// reading new batches until the queue drained to half of this.
inline constexpr std::size_t peer_write_queue_limit = 16;
/// TCP connect + WebSocket/TLS handshake + authentication must finish within this.
inline constexpr auto peer_handshake_timeout = 10s;
/// A peer silent for this long is dead; Beast sends a ping at half of it.
inline constexpr auto peer_idle_timeout = 10s;
/// Reconnect backoff for outgoing links: full jitter between 0 and min(max, base * 2^n)
/// (base/backoff.hpp) after a transient ending...
inline constexpr auto peer_reconnect_base = 200ms;
inline constexpr auto peer_reconnect_max = 5s;
/// ... and with this cap instead after a permanent one (protocol/ending.hpp: wrong secret,
/// other store, no protocol version in common, incarnation mismatch, a v1 lane's outbox
/// lost), which needs an operator.
inline constexpr auto peer_reconnect_permanent = 60s;
/// A session must last this long before the reconnect backoff starts over from the base.
inline constexpr auto peer_session_proven = 10s;
/// Length of the random nonce each side puts in its hello frame.
inline constexpr std::size_t peer_nonce_bytes = 32;
/// A v2 session sends a news frame (liveness, cloud_through, cover) on change and at least
/// this often (docs/protocol.md "News").
inline constexpr auto peer_news_interval = 2s;
/// v3 catalog anti-entropy (docs/protocol.md "Catalog"): most changes in one catalog page, and
/// the page's soft size cap (a page stops growing past it; each change's data is at most
/// MAX_MESSAGE_BYTES, so a page stays far below peer_max_frame_bytes).
inline constexpr std::size_t peer_catalog_page_changes = 500;
inline constexpr std::size_t peer_catalog_page_bytes = 4u << 20;
/// After a commit that changed the catalog, every v3 session sends its catalog_have this much
/// later (several commits in a row make one frame) ...
inline constexpr auto peer_catalog_have_debounce = 100ms;
/// ... and at least this often anyway (a change the lane was not told about still spreads).
inline constexpr auto peer_catalog_have_interval = 5s;

// ---- local HTTP API -----------------------------------------------------------------------
/// Header block limit for a local API request.
inline constexpr std::size_t api_header_limit = 16u << 10;
/// A local API client must send its request within this.
inline constexpr auto api_request_timeout = 30s;
/// Default and largest `limit` of GET /v1/messages.
inline constexpr std::size_t api_list_default_limit = 100;
inline constexpr std::size_t api_list_max_limit = 10'000;
/// Most messages in one batch POST /v1/messages {"messages": [...]} (the body limit applies too).
inline constexpr std::size_t api_batch_max_messages = 500;
/// `timeout_ms` of ?wait=peer_ack|cloud_ack: default and bounds (docs/api.md "Waiting").
inline constexpr std::chrono::milliseconds api_wait_default{5'000};
inline constexpr std::chrono::milliseconds api_wait_max{60'000};
/// Most messages waited for at once over the whole API (a batch takes one place per message);
/// a wait beyond it is refused with 503 and Retry-After.
inline constexpr std::size_t api_max_waiters = 4'096;
inline constexpr auto api_waiters_retry_after = 1s;

// ---- cloud uploader -----------------------------------------------------------------------
/// Soft cap on one upload request body; Supabase gives a function about 2 s of CPU.
inline constexpr std::size_t cloud_max_request_bytes = 512u << 10;
/// Connect + TLS + request + response must finish within this (the cap of the adaptive
/// timeout, cloud/pacing.hpp; the whole timeout while no request has succeeded yet).
inline constexpr auto cloud_request_timeout = 30s;
/// The adaptive timeout is never shorter than this, whatever the recent answers took.
inline constexpr auto cloud_request_timeout_floor = 5s;
/// Upload rounds (one request each at a time) that may be unanswered at once: the next
/// batch goes out while the cloud still works on the previous one, and the commit of an
/// answer overlaps the next request. 1 after a failure, until a request succeeds.
inline constexpr std::size_t cloud_requests_in_flight = 2;
/// Largest response body accepted from the edge function.
inline constexpr std::size_t cloud_max_response_bytes = 4u << 20;
/// Retry delay floor when the function is not deployed (HTTP 404).
inline constexpr auto cloud_not_found_retry = 30s;
/// While set_cover() is set, the uploader asks it this often between rounds, so a lane taken
/// over (or no longer) is seen without waiting for the idle poll (CLOUD_SYNC_INTERVAL_MS).
inline constexpr auto cloud_cover_check = 1s;
/// Deadline of the highest-seq query (a new, empty outbox without peers asks before seq 1).
inline constexpr auto cloud_query_timeout = 10s;

// ---- agent (the lane: rebuild, start check, liveness) --------------------------------------
/// After a start, a lane with PEER_TERMINALS holds POST /v1/messages until every configured
/// link answered once (a peer's ready, or a failed attempt), at most this long (the start
/// check: a wiped outbox is found before it hands out a seq).
inline constexpr auto start_peer_check = 3s;
/// A new, empty outbox without PEER_TERMINALS asks the cloud for its highest seq; a failed
/// query is asked again with full-jitter backoff between these (docs/architecture.md).
inline constexpr auto cloud_seq_retry_base = 1s;
inline constexpr auto cloud_seq_retry_max = 30s;
/// Retry-After of the 503 that POST /v1/messages answers while the lane rebuilds.
inline constexpr auto rebuild_retry_after = 2s;
/// How often the lane notes its live sessions (liveness), recomputes the origins it covers
/// for the cloud (takeover) and sends news to its peers when something changed.
inline constexpr auto lane_tick = 1s;

// ---- retention ------------------------------------------------------------------------------
/// Rows one retention transaction deletes at most (agent/retention.hpp): a few milliseconds of
/// writer time, so a publish queued behind it waits at most that long.
inline constexpr std::size_t prune_batch_rows = 2'000;

// ---- shutdown -----------------------------------------------------------------------------
/// After SIGTERM, sessions get this long to close cleanly before the io_context is stopped.
inline constexpr auto shutdown_grace = 5s;

} // namespace lanesync::tuning
