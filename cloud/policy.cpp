#include "cloud/policy.hpp"

#include "cloud/wire.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <iterator>
#include <set>

namespace lanesync::cloud {

bool is_transient(int s) {
    if (s == 0)
        return true; // no answer: connect, TLS, timeout, truncated
    if (s >= 500)
        return true; // 500, 502, 503, 504, 546 WORKER_LIMIT ...
    switch (s) {
    case 401: // the key may be rotated back / fixed in the function's secrets
    case 403:
    case 404: // function not deployed yet (retried slowly)
    case 408: // request timeout
    case 425: // too early
    case 429: // rate limited
        return true;
    default:
        break;
    }
    // A redirect means SUPABASE_URL is wrong (we never follow one with the key attached):
    // keep retrying with backoff and show it in status until the operator fixes it.
    if (s >= 300 && s < 400)
        return true;
    // 2xx is not a failure; 400, 409, 413 (split), 422 and other 4xx are answers about the
    // request itself, which sending it again cannot change.
    return false;
}

namespace {

using kind = decision::kind;

/// The status line for an HTTP status the uploader retries: built from the code and the
/// function's name alone, never from response or request text.
std::string status_error(int status, const std::string& function) {
    auto code = std::to_string(status);
    switch (status) {
    case 401:
    case 403:
        return "cloud rejected the service key (HTTP " + code + ")";
    case 404:
        return "edge function " + function + " not found (HTTP 404): is it deployed?";
    case 408:
        return "cloud request timeout (HTTP 408)";
    case 429:
        return "cloud rate limit (HTTP 429)";
    case 546:
        return "edge function hit its resource limit (HTTP 546 WORKER_LIMIT)";
    default:
        break;
    }
    if (status >= 300 && status < 400)
        return "unexpected redirect (HTTP " + code + "): check SUPABASE_URL";
    if (status >= 500)
        return "cloud server error (HTTP " + code + ")";
    return "unexpected answer (HTTP " + code + ")";
}

/// A 2xx: apply every well-formed result for an id of this batch, whatever else the answer
/// holds; ids without a usable result stay where they are and are retried.
decision decide_2xx(const http_result& res, const sent_batch& sent) {
    auto d = wire::decode_results(res.body, sent.ids);
    decision out;
    out.http_status = res.status;
    out.results = std::move(d.results);
    if (d.clean()) {
        out.k = kind::ack;
        out.outcome = "ok";
        return out;
    }
    out.k = kind::ack_and_retry;
    out.outcome = "bad_response";
    out.problem = d.problem();
    out.error =
        "unusable answer from the cloud (HTTP " + std::to_string(res.status) + "): " + out.problem;
    // Nothing missing but something off (an unknown id, a conflict): the whole batch again.
    out.retry = d.missing.empty() ? sent.ids : std::move(d.missing);
    return out;
}

/// An answer about the request itself (413, 400, 409, 422 ...). Split it to find the message
/// at fault, so one bad message never holds back the ones behind it.
decision decide_refused(const http_result& res, const sent_batch& sent) {
    const bool too_large = res.status == 413;
    decision out;
    out.http_status = res.status;
    out.outcome = too_large ? "too_large" : "rejected_batch";
    if (sent.ids.size() > 1) {
        out.k = kind::split;
        out.split_at = sent.ids.size() / 2;
        if (too_large) // remember: later batches start at most this large
            out.byte_cap = std::max<std::size_t>(sent.body_bytes / 2, 1);
        return out;
    }
    out.k = kind::fail;
    if (too_large) {
        out.reason = "too large for the cloud";
    } else {
        out.reason = "cloud rejected the request (HTTP " + std::to_string(res.status) + ")";
        if (auto text = wire::error_text(res.body); !text.empty())
            out.reason += ": " + text;
    }
    return out;
}

} // namespace

bool lane_refused(const http_result& res) {
    if (res.fail != http_result::failure::none || res.status != 400)
        return false;
    const std::string e = wire::error_text(res.body);
    return e.starts_with("lane.") || e.starts_with("lane ");
}

decision decide(const http_result& res, const sent_batch& sent) {
    decision out;
    if (res.fail == http_result::failure::cancelled) {
        out.k = kind::cancelled;
        out.outcome = outcome_label(res.fail);
        return out;
    }
    if (res.fail != http_result::failure::none) {
        out.k = kind::retry;
        out.outcome = outcome_label(res.fail);
        out.error = res.error;
        return out;
    }
    const int st = res.status;
    if (st >= 200 && st < 300)
        return decide_2xx(res, sent);
    if (st == 413 || !is_transient(st))
        return decide_refused(res, sent);
    out.http_status = st;
    out.outcome = "http_error";
    out.error = status_error(st, sent.function);
    if (st == 401 || st == 403)
        out.k = kind::auth_error;
    else if (st == 404) // not deployed: no point asking often
        out.k = kind::retry_slowly;
    else
        out.k = kind::retry;
    return out;
}

// ---- covered uploads ---------------------------------------------------------------------------

std::vector<std::string> covered_origins(std::vector<std::string> cover, std::string_view self) {
    std::erase_if(
        cover, [&](const std::string& o) { return o == self || !protocol::valid_terminal_id(o); });
    std::sort(cover.begin(), cover.end());
    cover.erase(std::unique(cover.begin(), cover.end()), cover.end());
    return cover;
}

std::vector<outbox::record> compose_round(std::vector<outbox::record> own,
                                          std::vector<outbox::record> covered, std::size_t limit) {
    std::set<std::string> ids;
    for (const auto& r : own)
        ids.insert(r.msg.id);
    std::erase_if(covered, [&](const outbox::record& r) { return !ids.insert(r.msg.id).second; });
    // std::merge is stable: within a level the own messages come first, each list keeps its
    // order (own: seq; covered: origin, then seq).
    std::vector<outbox::record> out;
    out.reserve(own.size() + covered.size());
    std::merge(std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()),
               std::make_move_iterator(covered.begin()), std::make_move_iterator(covered.end()),
               std::back_inserter(out), [](const outbox::record& a, const outbox::record& b) {
                   return a.msg.prio < b.msg.prio;
               });
    if (out.size() > limit)
        out.resize(limit);
    return out;
}

} // namespace lanesync::cloud
