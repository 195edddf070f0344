#pragma once
/// The local API's request handling without sockets or storage (STYLE habit 13): routing,
/// query parsing, validation and the JSON answers, all pure functions of their arguments.
/// api_server.cpp moves bytes, runs the reads through outbox::async_store (on the outbox's
/// reader thread) and calls these with what it read; tests call them directly too.
/// See docs/api.md for the contract.

#include "agent/reload.hpp"
#include "lanes/gossip.hpp"
#include "outbox/outbox.hpp"
#include "protocol/publish.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lanesync::agent::api {

/// An answer, independent of Beast.
struct response {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string allow; ///< the Allow header of a 405
    /// More header fields (the page's Content-Security-Policy, CORS).
    std::vector<std::pair<std::string, std::string>> headers;
};

response json_response(unsigned status, const nlohmann::json& body);
/// A piece of client input safe to echo in an error: at most 64 characters.
std::string echo(std::string_view s);
/// `{"error": message}` (plus `extra` fields) with `status`.
response error_response(unsigned status, std::string_view message,
                        nlohmann::json extra = nlohmann::json::object());

enum class route {
    publish,       ///< POST /v1/messages
    list_messages, ///< GET /v1/messages?state=...&limit=...
    get_message,   ///< GET /v1/messages/{id}
    status,        ///< GET /v1/status
    metrics,       ///< GET /metrics
    healthz,       ///< GET /healthz
    root,          ///< GET /
    sync,          ///< POST /v1/sync
    cloud_pause,   ///< POST /v1/cloud/pause
    cloud_resume,  ///< POST /v1/cloud/resume
    rebuild,       ///< POST /v1/rebuild
    reload,        ///< POST /v1/reload
    catalog_get,   ///< GET /v1/catalog/{scope}/{key} (match::id: "{scope}/{key}")
    changes,       ///< GET /v1/changes?scope=S&since=V&limit=N[&timeout_ms=T]
    not_found,     ///< no such path (404)
    wrong_method,  ///< known path, other method (405 with `allow`)
};

struct match {
    route r = route::not_found;
    std::string id;    ///< get_message: the raw id segment
    std::string allow; ///< wrong_method: e.g. "GET"
};

/// Routes `method` + the path part of a target (no query).
match route_request(std::string_view method, std::string_view path);

/// A request target split into its path and decoded query parameters.
struct target {
    std::string path;
    std::vector<std::pair<std::string, std::string>> query;
};
/// Splits and percent-decodes; nullopt when the target is malformed (bad %-escape, not
/// origin-form).
std::optional<target> parse_target(std::string_view raw);

/// POST /v1/messages is checked by check_publish_input (api_publish.hpp).
/// The answer to a finished publish: 201 created, 200 existing (current state), 409 conflict,
/// 503 storage failure.
response publish_answer(const outbox::publish_outcome& o);

/// A read of the outbox threw: 503 {"error": "storage failure: <what>"}.
response storage_failure(std::exception_ptr e);

/// GET /v1/messages/{id}, before the read: the normalized id, or 400 when not a UUID.
std::variant<std::string, response> check_message_id(std::string_view id);
/// ... after the read of `id`: 200 with the record, 404 when unknown.
response message_answer(const std::string& id, const std::optional<outbox::record>& rec);

/// GET /v1/messages?state=S&limit=N, before the read: 400 on a missing/unknown state, a bad
/// limit or an unknown parameter.
struct list_query {
    outbox::state st = outbox::state::pending;
    std::size_t limit = 0;
};
std::variant<list_query, response> check_list(const target& t);
/// ... after the reads: 200 {"state", "count" (from `c`), "limit", "messages"}.
response list_answer(const list_query& q, const outbox::counts& c,
                     const std::vector<outbox::record>& records);

/// GET /v1/status: 200 with the status document (agent/status.hpp builds it).
response status_answer(const nlohmann::json& doc);

/// GET /metrics: Prometheus text format 0.0.4. Runs the registry's collectors, which read the
/// outbox: call it on the outbox reader thread (async_store::read), not on an io thread.
response metrics_text();

/// GET /healthz from the outbox's health snapshot: 200 {"ok":true} when writable, else
/// 503 {"ok":false,"error":"outbox is not writable","reason":<why>}.
response healthz(const outbox::health& h);

/// GET /healthz while the lane rebuilds: 503 {"ok": false, "status": "rebuilding", "reason",
/// "progress", "waiting_for"}.
response healthz_rebuilding(const lanes::rebuild_view& v);

/// POST /v1/messages while the lane rebuilds: 503 {"error": "rebuilding: <reason>",
/// "rebuild": {...}} with Retry-After (tuning::rebuild_retry_after).
response rebuilding_answer(const lanes::rebuild_view& v);

/// POST /v1/rebuild, before anything changes: the peers to leave out (`{"without": [...]}`,
/// each a non-empty string; an empty body or `{}` means none), or 400.
std::variant<std::vector<std::string>, response> check_rebuild_body(std::string_view body);
/// ... after: 200 with the rebuild object, 409 {"error": "not rebuilding"}, 400 unknown peer.
response rebuild_answer(const lanes::exclude_result& r, const lanes::rebuild_view& v);

/// POST /v1/reload, after the agent re-read its env file: 200 with reload_json when applied or
/// nothing changed, 409 {"error", ...} when a key cannot change live, 422 when the file is
/// invalid (the error names FILE:LINE); 409 {"error": "reload is not available"} without an
/// agent (`r` null).
response reload_answer(const reload_result* r);

/// GET /: the live dashboard (agent/dashboard.html) with its Content-Security-Policy.
response root_page();

/// Why a request must be refused (403) as coming from outside this machine, or empty:
/// an Origin header that is not a loopback origin (a web page elsewhere making the browser
/// post to the local API), or a Host that is not a loopback name (DNS rebinding).
std::string foreign_request(std::optional<std::string_view> host,
                            std::optional<std::string_view> origin);

/// True for the origin of a page served from this machine over plain HTTP:
/// http://127.0.0.1, http://localhost or http://[::1], with or without a port.
bool is_loopback_origin(std::string_view origin);

/// CORS for the dashboard's view of other lanes: GET /v1/status, /metrics and /healthz answer
/// a request whose Origin is a loopback origin with `Access-Control-Allow-Origin: <origin>`
/// (no credentials), and always say `Vary: Origin`. Other routes and origins get nothing, so
/// a page from elsewhere can neither read these nor anything else (messages, control routes).
void add_cors(response& r, route rt, std::optional<std::string_view> origin);

/// POST /v1/sync, /v1/cloud/pause, /v1/cloud/resume: 202 {"ok":true} when the cloud is
/// configured (an uploader and SUPABASE_URL; the caller then performs the action), else 409.
response cloud_control(bool cloud_configured);

/// application/json or any */*+json type, parameters (charset) ignored, case-insensitive.
bool is_json_media_type(std::string_view content_type);

} // namespace lanesync::agent::api
