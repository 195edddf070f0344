#pragma once
/// The lane status document (GET /v1/status, `lanesync status --json`) and its human
/// renderings (`lanesync status`, `lanesync status --store DIR`). See docs/api.md.
///
/// Secrets never appear: the document names the cloud by SUPABASE_URL only, never the
/// service key, and never mentions PEER_SECRET.

#include "agent/reload.hpp"
#include "cloud/puller.hpp"
#include "cloud/uploader.hpp"
#include "conf/config.hpp"
#include "lanes/gossip.hpp"
#include "outbox/outbox.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::agent {

/// Everything the status document is built from, read in one go. `peers` and `cloud` are set
/// for a running agent; `marks` is read only without `peers` (a stopped agent, or the API
/// without gossip in unit tests).
struct status_inputs {
    outbox::counts counts;
    std::vector<outbox::peer_mark> marks;
    std::optional<std::vector<lanes::peer_status>> peers;
    std::optional<cloud::status> cloud;
    /// The rebuild as persisted (always read) and as the running lane sees it (with gossip).
    outbox::rebuild_state stored_rebuild;
    std::optional<lanes::rebuild_view> rebuild;
    /// The origins held, and with gossip who covers each and when it was last seen.
    std::vector<outbox::origin_summary> summaries;
    std::optional<std::vector<lanes::origin_view>> origins;
    /// The outbox's health snapshot (a running agent: with gossip or an uploader).
    std::optional<outbox::health> health;
    /// Head office's data held (always read) and the puller's state (a running agent).
    std::vector<protocol::catalog_scope_state> catalog;
    std::optional<cloud::pull_status> pull;
    /// The running agent's last live reload (nullopt before the first, or without an agent).
    std::optional<reload_result> reload;
};

/// Reads the inputs: the outbox's counts (and peer marks when `gossip` is null), gossip's and
/// the uploader's status (either may be null). Blocking: the API calls it on the outbox
/// reader thread (outbox::async_store::read), the CLI directly. Throws what the reads throw.
status_inputs read_status_inputs(outbox::store& store, const lanes::gossip* gossip,
                                 const cloud::uploader* uploader,
                                 const cloud::puller* puller = nullptr);

/// The status document from its inputs (pure). Ages are computed against `now_ms`.
nlohmann::json status_json(const conf::config& cfg, const status_inputs& in, bool agent_running,
                           std::int64_t now_ms);

/// Builds the status document. `peers` and `cloud` come from a running agent; null when the
/// agent is not running (the CLI reading the outbox directly): peers are then taken from the
/// persisted peer marks (connected=false) and cloud fields that only a live uploader knows are
/// null. Reads the outbox (get_counts, peer_marks); throws what they throw.
nlohmann::json status_json(const conf::config& cfg, outbox::store& store,
                           const std::vector<lanes::peer_status>* peers, const cloud::status* cloud,
                           bool agent_running);

/// Same, with an explicit clock (tests): ages are computed against `now_ms`.
nlohmann::json status_json(const conf::config& cfg, outbox::store& store,
                           const std::vector<lanes::peer_status>* peers, const cloud::status* cloud,
                           bool agent_running, std::int64_t now_ms);

/// The `rebuild` object of the status document (docs/api.md): {"active": true, "reason",
/// "since_ms", "restored", "target", "from", "waiting_for", "excluded", "conflicts",
/// "progress", "incarnation", "trust_caps"}, or {"active": false, "incarnation", ...}.
nlohmann::json rebuild_json(const lanes::rebuild_view& v);
/// What a stopped lane's outbox says of its rebuild (no progress is known without the agent).
lanes::rebuild_view rebuild_view_of(const outbox::rebuild_state& st);
/// The `origins` array of the status document.
nlohmann::json origins_json(const std::vector<lanes::origin_view>& origins);
/// The status table's lines for the rebuild and the origins (empty when there is nothing to
/// say): "REBUILD   rebuilding from L2: 3,200 of 10,000 (waiting for L3)" and an ORIGINS table.
std::string rebuild_lines(const nlohmann::json& status);

/// What `lanesync rebuild --env F` prints for a rebuild object: the progress, reason, what it
/// waits for, exclusions and conflicts; or "not rebuilding (incarnation …)". Ends with "\n".
std::string rebuild_text(const nlohmann::json& rebuild);

/// A human rendering of one status document: counts by state, ages, replicas, one row per
/// peer (connected, acked through seq, lag), the cloud line. Ends with a newline.
std::string status_table(const nlohmann::json& status);

/// One row per lane for `lanesync status --store DIR`: lane, running, pending, peer_ack,
/// cloud_ack, failed, oldest pending, peers up, cloud. An entry may be
/// {"terminal_id"?, "env": FILE, "error": "..."} for a lane whose status could not be read;
/// its row shows the error. Ends with a newline.
std::string store_table(const std::vector<nlohmann::json>& lanes);

/// "-" for none, else a short age: "0.4s", "12s", "3m04s", "2h05m", "3d04h".
std::string format_age(const nlohmann::json& seconds);

} // namespace lanesync::agent
