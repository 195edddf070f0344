#pragma once
/// The puller's side of the sync-pull wire format (docs/downstream.md, "Lane"; the cloud's
/// side is cloud/supabase/functions/sync-pull), as pure functions: the request body from the
/// lane's cursors, and the defensive reading of an answer into catalog pages. No Asio, no
/// sockets, no clock: tests/cloud/pull_wire_test.cpp calls them directly. Private to cloud/.

#include "cloud/http_result.hpp"
#include "protocol/catalog.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::cloud::pull {

/// Changes per scope per response the puller asks for (the cloud accepts 1..1000).
inline constexpr std::size_t default_limit = 500;
/// Highest version or time accepted from the cloud: JSON numbers above 2^53 lose precision.
inline constexpr std::int64_t max_safe_integer = 9'007'199'254'740'992;

/// One scope's cursor as sent: `through`, and the snapshot's resume token while the cloud's
/// snapshot of that scope is under way ("" otherwise).
struct cursor {
    std::string scope;
    std::int64_t through = 0;
    std::string resume;
};

/// `{"store_id":S,"terminal_id":T,"limit":N,"cursors":{scope:{"through":n[,"resume":r]}}}`.
std::string encode_request(std::string_view store_id, std::string_view terminal_id,
                           std::size_t limit, const std::vector<cursor>& cursors);

/// One scope of an answer: the page to apply, and what the cloud said around it.
struct scope_answer {
    protocol::catalog_page page; ///< done = !more; changes carry the scope
    std::int64_t horizon = 0;    ///< the cloud's compaction horizon for this scope
    bool more = false;           ///< pull again at once
};

struct response {
    std::int64_t head = 0; ///< highest version in the log visible to this store
    std::vector<scope_answer> scopes;
    /// Some scope has more to give: the puller asks again at once.
    bool more() const;
};

/// A 200's body read defensively: every field checked (types, ranges, scope and key syntax, a
/// catch-up change above its page's through, a snapshot page with more but no resume token,
/// a scope twice). `error` names the first problem (never response text beyond a scope name);
/// nullopt value then, and nothing of the answer is applied.
struct parsed {
    std::optional<response> value;
    std::string error;
};
parsed parse_response(std::string_view body);

/// What one request's result means (the rules, with policy.hpp's is_transient).
struct outcome {
    enum class kind { ok, cancelled, retry, auth_error, bad_request } k = kind::retry;
    std::optional<response> value; ///< ok
    std::string error;             ///< otherwise: one line for status and logs
    std::string label;             ///< metrics label: ok, http_error, network, timeout, tls,
                                   ///< bad_response, malformed, cancelled
    int http_status = 0;
};
outcome read_result(const http_result& r);

} // namespace lanesync::cloud::pull
