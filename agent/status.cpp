#include "agent/status.hpp"

#include "agent/status_catalog.hpp"
#include "agent/views.hpp"
#include "base/log.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace lanesync::agent {
namespace {

using nlohmann::json;

/// Seconds between `then_ms` and `now_ms`, rounded to milliseconds; 0.0 when unknown.
double age_s(const std::optional<std::int64_t>& then_ms, std::int64_t now_ms) {
    if (!then_ms)
        return 0.0;
    auto d = std::max<std::int64_t>(0, now_ms - *then_ms);
    return static_cast<double>(d) / 1000.0;
}

json text_or_null(const std::string& s) {
    if (s.empty())
        return nullptr;
    return log::redact(s);
}

/// SUPABASE_URL without any user:password@ part (the URL is shown; credentials never are).
std::string display_url(const std::string& url) {
    auto scheme = url.find("://");
    if (scheme == std::string::npos)
        return url;
    auto host_start = scheme + 3;
    auto path = url.find('/', host_start);
    auto at = url.rfind('@', path == std::string::npos ? url.size() : path);
    if (at == std::string::npos || at < host_start)
        return url;
    return url.substr(0, host_start) + url.substr(at + 1);
}

json peer_row(const lanes::peer_status& p) {
    return {{"url", text_or_null(p.url)},
            {"terminal_id", text_or_null(p.terminal_id)},
            {"connected", p.connected},
            {"outbound", p.outbound},
            {"acked_through_seq", p.acked_through_seq},
            {"last_ack_at", time_or_null(p.last_ack_at_ms)},
            {"lag", p.lag},
            {"last_error", text_or_null(p.last_error)},
            {"next_attempt_at", time_or_null(p.next_attempt_at_ms)},
            {"permanent_failure", p.permanent_failure},
            {"failure", text_or_null(p.failure)},
            {"batches_sent", p.batches_sent},
            {"batches_received", p.batches_received},
            {"incarnation", text_or_null(p.incarnation)}};
}

json cloud_live(const conf::config& cfg, const cloud::status& c) {
    json j = {{"enabled", c.enabled},
              {"url", cfg.cloud_enabled() ? json(display_url(cfg.supabase_url)) : json(nullptr)},
              {"function", cfg.supabase_function},
              {"paused", c.paused},
              {"in_flight", c.in_flight},
              {"requests_in_flight", c.requests_in_flight},
              {"last_success_at", time_or_null(c.last_success_at_ms)},
              {"last_attempt_at", time_or_null(c.last_attempt_at_ms)},
              {"last_error", text_or_null(c.last_error)},
              {"next_attempt_at", time_or_null(c.next_attempt_at_ms)},
              {"current_backoff_ms", c.current_backoff_ms},
              {"consecutive_failures", c.consecutive_failures},
              {"requests_ok", c.requests_ok},
              {"requests_failed", c.requests_failed},
              {"messages_acked", c.messages_acked},
              {"messages_rejected", c.messages_rejected}};
    j["last_http_status"] = c.last_http_status ? json(*c.last_http_status) : json(nullptr);
    return j;
}

/// What is known of the cloud without a running uploader: only the configuration.
json cloud_unknown(const conf::config& cfg) {
    return {{"enabled", cfg.cloud_enabled()},
            {"url", cfg.cloud_enabled() ? json(display_url(cfg.supabase_url)) : json(nullptr)},
            {"function", cfg.supabase_function},
            {"paused", false},
            {"in_flight", false},
            {"requests_in_flight", 0},
            {"last_success_at", nullptr},
            {"last_attempt_at", nullptr},
            {"last_error", nullptr},
            {"next_attempt_at", nullptr},
            {"current_backoff_ms", nullptr},
            {"consecutive_failures", nullptr},
            {"last_http_status", nullptr}};
}

// ---- rendering helpers ------------------------------------------------------------------------

std::string str(const json& j) {
    if (j.is_null())
        return "-";
    if (j.is_string())
        return j.get<std::string>();
    if (j.is_boolean())
        return j.get<bool>() ? "yes" : "no";
    return j.dump();
}

const json& at(const json& j, const char* key) {
    static const json null_value;
    if (!j.is_object())
        return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

/// A peer row's LAST ERROR cell: a permanent ending (long backoff) says so first.
std::string peer_error(const json& p) {
    const json& perm = at(p, "permanent_failure");
    if (perm.is_boolean() && perm.get<bool>())
        return "PERMANENT (" + str(at(p, "failure")) + "): " + str(at(p, "last_error"));
    return str(at(p, "last_error"));
}

/// Parses the RFC 3339 UTC form format_time_ms writes (2026-11-22T03:57:20.123Z).
std::optional<std::int64_t> parse_time_ms(const std::string& s) {
    std::tm tm{};
    int ms = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &sec, &ms) !=
        7)
        return std::nullopt;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

/// "3s ago" / "in 2s" relative to the document's generated_at, else the raw time, "-" if null.
std::string when(const json& t, const json& status) {
    if (!t.is_string())
        return "-";
    auto then = parse_time_ms(t.get<std::string>());
    auto now = at(status, "generated_at").is_string()
                   ? parse_time_ms(at(status, "generated_at").get<std::string>())
                   : std::nullopt;
    if (!then || !now)
        return t.get<std::string>();
    auto diff = *now - *then;
    json secs = static_cast<double>(std::llabs(diff)) / 1000.0;
    return diff >= 0 ? format_age(secs) + " ago" : "in " + format_age(secs);
}

/// Left-aligned columns separated by two spaces, each `indent` from the margin.
std::string table(const std::vector<std::vector<std::string>>& rows,
                  const std::string& indent = "") {
    std::vector<std::size_t> width;
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i)
                width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line = indent;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size())
                line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out += line + "\n";
    }
    return out;
}

std::string cloud_word(const json& s) {
    const json& c = at(s, "cloud");
    if (!at(c, "enabled").is_boolean() || !at(c, "enabled").get<bool>())
        return "off";
    if (!at(s, "agent_running").is_boolean() || !at(s, "agent_running").get<bool>())
        return "on";
    if (at(c, "paused").is_boolean() && at(c, "paused").get<bool>())
        return "paused";
    if (at(c, "last_error").is_string())
        return "retrying";
    return "ok";
}

/// "BACKLOG  critical 3 pending + 0 peer_ack, low 200 + 12\n": the levels that hold any, in
/// upload order; nothing when the backlog is empty.
std::string backlog_line(const json& b) {
    std::string out;
    if (!b.is_object())
        return out;
    for (std::size_t level = 0; level < 4; ++level) {
        const std::string name(protocol::to_string(static_cast<protocol::priority>(level)));
        const json& l = at(b, name.c_str());
        if (at(l, "pending") == 0 && at(l, "peer_ack") == 0)
            continue;
        out += out.empty() ? "BACKLOG  " : ", ";
        out += name + " " + str(at(l, "pending")) + " pending + " + str(at(l, "peer_ack")) +
               " peer_ack";
    }
    return out.empty() ? out : out + " (uploaded critical first)\n";
}

std::string joined(const json& a) {
    std::string out;
    if (a.is_array())
        for (const auto& x : a)
            out += (out.empty() ? "" : ", ") + str(x);
    return out;
}

} // namespace

std::string rebuild_lines(const json& s) {
    std::string out;
    const json& rb = at(s, "rebuild");
    if (at(rb, "active") == true) {
        out += "REBUILD   " + str(at(rb, "progress")) + "\n";
        out += "          reason: " + str(at(rb, "reason")) + "\n";
        if (!joined(at(rb, "excluded")).empty())
            out += "          excluded: " + joined(at(rb, "excluded")) + "\n";
        if (at(rb, "conflicts").is_array())
            for (const auto& c : at(rb, "conflicts"))
                out += "          conflict: " + str(c) + "\n";
        out += "\n";
    } else if (at(rb, "start_check") == true) {
        out += "REBUILD   start check: waiting for every peer to answer once (POSTs wait)\n\n";
    }
    const json& origins = at(s, "origins");
    bool others = false;
    if (origins.is_array())
        for (const auto& o : origins)
            others = others || at(o, "own") != true;
    if (!others)
        return out;
    std::vector<std::vector<std::string>> rows{
        {"ORIGIN", "HWM", "HELD", "CLOUD THROUGH", "COVERED BY", "LAST SEEN"}};
    for (const auto& o : origins) {
        const json& seen = at(o, "last_seen_ms");
        std::string last = "-";
        if (at(o, "own") == true)
            last = "(this lane)";
        else if (seen.is_number_integer())
            last = when(protocol::format_time_ms(seen.get<std::int64_t>()), s);
        rows.push_back({str(at(o, "origin")), str(at(o, "hwm")), str(at(o, "held")),
                        str(at(o, "cloud_through")), str(at(o, "covered_by")), last});
    }
    out += "ORIGINS\n" + table(rows, "  ") + "\n";
    return out;
}

std::string format_age(const json& seconds) {
    if (!seconds.is_number())
        return "-";
    double s = seconds.get<double>();
    if (s < 0)
        s = 0;
    char buf[32];
    if (s < 10) {
        std::snprintf(buf, sizeof buf, "%.1fs", s);
    } else if (s < 60) {
        std::snprintf(buf, sizeof buf, "%ds", static_cast<int>(s));
    } else if (s < 3600) {
        auto t = static_cast<long>(s);
        std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    } else if (s < 86400) {
        auto t = static_cast<long>(s) / 60;
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 60, t % 60);
    } else {
        auto t = static_cast<long>(s) / 3600;
        std::snprintf(buf, sizeof buf, "%ldd%02ldh", t / 24, t % 24);
    }
    return buf;
}

nlohmann::json status_json(const conf::config& cfg, outbox::store& store,
                           const std::vector<lanes::peer_status>* peers, const cloud::status* cloud,
                           bool agent_running) {
    return status_json(cfg, store, peers, cloud, agent_running, protocol::now_ms());
}

nlohmann::json status_json(const conf::config& cfg, outbox::store& store,
                           const std::vector<lanes::peer_status>* peers, const cloud::status* cloud,
                           bool agent_running, std::int64_t now_ms) {
    status_inputs in;
    in.counts = store.get_counts();
    if (peers)
        in.peers = *peers;
    else
        in.marks = store.peer_marks();
    if (cloud)
        in.cloud = *cloud;
    in.stored_rebuild = store.get_rebuild_state();
    in.summaries = store.origin_summaries();
    in.catalog = store.catalog_scopes();
    return status_json(cfg, in, agent_running, now_ms);
}

nlohmann::json status_json(const conf::config& cfg, const status_inputs& in, bool agent_running,
                           std::int64_t now_ms) {
    const auto& c = in.counts;
    json j;
    j["terminal_id"] = cfg.terminal_id;
    j["store_id"] = cfg.store_id;
    j["version"] = LANESYNC_VERSION;
    j["agent_running"] = agent_running;
    j["generated_at"] = protocol::format_time_ms(now_ms);
    j["peer_ack_quorum"] = cfg.peer_ack_quorum;
    j["outbox"] = {{"path", cfg.outbox_path},
                   {"pending", c.pending},
                   {"peer_ack", c.peer_ack},
                   {"cloud_ack", c.cloud_ack},
                   {"failed", c.failed},
                   {"oldest_pending_age_s", age_s(c.oldest_pending_stored_at_ms, now_ms)},
                   {"oldest_peer_ack_age_s", age_s(c.oldest_peer_ack_at_ms, now_ms)},
                   {"last_seq", c.own_last_seq}};
    json backlog = json::object(); // by priority, critical first (docs/uploader.md "Priorities")
    for (std::size_t level = 0; level < 4; ++level)
        backlog[std::string(protocol::to_string(static_cast<protocol::priority>(level)))] = {
            {"pending", c.pending_by_priority[level]}, {"peer_ack", c.peer_ack_by_priority[level]}};
    j["outbox"]["backlog"] = std::move(backlog);
    if (in.health) {
        j["outbox"]["writable"] = in.health->writable;
        j["outbox"]["disk_full"] = in.health->disk_full;
        j["outbox"]["storage_error"] = text_or_null(in.health->writable ? "" : in.health->error);
    }
    json replicas = json::object();
    for (const auto& [origin, n] : c.replicas)
        replicas[origin] = n;
    j["replicas"] = std::move(replicas);

    json urls = json::array();
    for (const auto& p : cfg.peers)
        urls.push_back(p.text);
    j["peer_urls"] = std::move(urls);

    json rows = json::array();
    if (in.peers) {
        for (const auto& p : *in.peers)
            rows.push_back(peer_row(p));
    } else {
        // Without a running agent only the persisted marks are known (by terminal id; which
        // configured URL a mark belongs to is learned only at authentication). With no marks
        // yet, the configured URLs are listed.
        const auto& marks = in.marks;
        for (const auto& m : marks) {
            lanes::peer_status p;
            p.terminal_id = m.terminal_id;
            p.acked_through_seq = m.acked_through;
            p.last_ack_at_ms = m.last_ack_at_ms;
            p.lag = c.own_last_seq > m.acked_through ? c.own_last_seq - m.acked_through : 0;
            rows.push_back(peer_row(p));
        }
        if (marks.empty())
            for (const auto& u : cfg.peers) {
                lanes::peer_status p;
                p.url = u.text;
                p.lag = c.own_last_seq;
                rows.push_back(peer_row(p));
            }
    }
    j["peers"] = std::move(rows);
    j["cloud"] = in.cloud ? cloud_live(cfg, *in.cloud) : cloud_unknown(cfg);
    auto rv = in.rebuild ? *in.rebuild : rebuild_view_of(in.stored_rebuild);
    if (rv.incarnation.empty())
        rv.incarnation = in.stored_rebuild.incarnation;
    j["incarnation"] = text_or_null(rv.incarnation);
    j["rebuild"] = rebuild_json(rv);
    j["pull"] = pull_json(cfg, in.pull);
    j["catalog"] = catalog_json(in.catalog);
    if (in.origins) {
        j["origins"] = origins_json(*in.origins);
    } else {
        std::vector<lanes::origin_view> views;
        for (const auto& o : in.summaries)
            views.push_back({o.origin, o.own, o.hwm, o.held, o.cloud_through, {}, std::nullopt});
        j["origins"] = origins_json(views);
    }
    j["reload"] = in.reload ? reload_json(*in.reload) : json(nullptr);
    return j;
}

std::string status_table(const nlohmann::json& s) {
    std::string out;
    bool running = at(s, "agent_running").is_boolean() && at(s, "agent_running").get<bool>();
    out += "lane " + str(at(s, "terminal_id")) + "   store " + str(at(s, "store_id")) +
           "   lanesync " + str(at(s, "version")) + "   " +
           (running ? "agent running" : "agent not running (read from the outbox file)") + "\n\n";

    const json& ob = at(s, "outbox");
    out += table({{"OUTBOX", "PENDING", "PEER_ACK", "CLOUD_ACK", "FAILED", "LAST SEQ",
                   "OLDEST PENDING", "OLDEST PEER_ACK"},
                  {"", str(at(ob, "pending")), str(at(ob, "peer_ack")), str(at(ob, "cloud_ack")),
                   str(at(ob, "failed")), str(at(ob, "last_seq")),
                   at(ob, "pending") == 0 ? "-" : format_age(at(ob, "oldest_pending_age_s")),
                   at(ob, "peer_ack") == 0 ? "-" : format_age(at(ob, "oldest_peer_ack_age_s"))}});
    out += backlog_line(at(ob, "backlog"));
    if (at(ob, "writable").is_boolean() && !at(ob, "writable").get<bool>())
        out += std::string(at(ob, "disk_full") == true ? "STORAGE: disk full"
                                                       : "STORAGE: not writable") +
               " (" + str(at(ob, "storage_error")) + "): new messages are refused with 503\n";
    out += reload_line(at(s, "reload"));
    out += "\n";

    std::string reps;
    const json& r = at(s, "replicas");
    if (r.is_object())
        for (auto it = r.begin(); it != r.end(); ++it)
            reps += (reps.empty() ? "" : ", ") + it.key() + " " + str(it.value());
    out += "REPLICAS  " + (reps.empty() ? std::string("none") : reps) + "\n\n";

    out += rebuild_lines(s);

    const json& peers = at(s, "peers");
    if (!peers.is_array() || peers.empty()) {
        out += "PEERS     none configured\n\n";
    } else {
        out += "PEERS (quorum " + str(at(s, "peer_ack_quorum")) + ")\n";
        std::vector<std::vector<std::string>> rows{{"TERMINAL", "URL", "CONNECTED", "ACKED THROUGH",
                                                    "LAG", "LAST ACK", "NEXT ATTEMPT",
                                                    "LAST ERROR"}};
        for (const auto& p : peers)
            rows.push_back({str(at(p, "terminal_id")), str(at(p, "url")),
                            running ? str(at(p, "connected")) : "-",
                            str(at(p, "acked_through_seq")), str(at(p, "lag")),
                            when(at(p, "last_ack_at"), s), when(at(p, "next_attempt_at"), s),
                            peer_error(p)});
        out += table(rows, "  ");
        out += "\n";
    }

    const json& c = at(s, "cloud");
    bool enabled = at(c, "enabled").is_boolean() && at(c, "enabled").get<bool>();
    if (!enabled) {
        out += "CLOUD     off (SUPABASE_URL not set)\n";
    } else {
        out += "CLOUD     " + cloud_word(s) + "   " + str(at(c, "url")) + "   function " +
               str(at(c, "function")) + "\n";
        if (running) {
            std::string http =
                at(c, "last_http_status").is_null() ? "-" : str(at(c, "last_http_status"));
            out += "          last success " + when(at(c, "last_success_at"), s) +
                   "   next attempt " + when(at(c, "next_attempt_at"), s) + "   backoff " +
                   str(at(c, "current_backoff_ms")) + " ms   last http " + http + "\n";
            out += "          last error " + str(at(c, "last_error")) + "\n";
        }
    }
    out += catalog_lines(s);
    return out;
}

std::string store_table(const std::vector<nlohmann::json>& lanes) {
    bool any_error = std::any_of(lanes.begin(), lanes.end(),
                                 [](const json& l) { return at(l, "error").is_string(); });
    std::vector<std::vector<std::string>> rows{{"LANE", "RUNNING", "PENDING", "PEER_ACK",
                                                "CLOUD_ACK", "FAILED", "OLDEST PENDING", "PEERS UP",
                                                "CLOUD"}};
    if (any_error)
        rows.front().push_back("NOTE");
    for (const auto& l : lanes) {
        std::string lane =
            at(l, "terminal_id").is_string() ? str(at(l, "terminal_id")) : str(at(l, "env"));
        if (at(l, "error").is_string()) {
            rows.push_back({lane, str(at(l, "agent_running")), "-", "-", "-", "-", "-", "-", "-",
                            str(at(l, "error"))});
            continue;
        }
        bool running = at(l, "agent_running").is_boolean() && at(l, "agent_running").get<bool>();
        const json& ob = at(l, "outbox");
        std::string up = "-";
        const json& peers = at(l, "peers");
        if (running && peers.is_array()) {
            std::size_t n = 0;
            for (const auto& p : peers)
                n += (at(p, "connected").is_boolean() && at(p, "connected").get<bool>()) ? 1 : 0;
            up = std::to_string(n) + "/" + std::to_string(peers.size());
        }
        std::vector<std::string> row{
            lane,
            running ? "yes" : "no",
            str(at(ob, "pending")),
            str(at(ob, "peer_ack")),
            str(at(ob, "cloud_ack")),
            str(at(ob, "failed")),
            at(ob, "pending") == 0 ? "-" : format_age(at(ob, "oldest_pending_age_s")),
            up,
            cloud_word(l)};
        if (any_error)
            row.push_back("");
        rows.push_back(std::move(row));
    }
    return table(rows);
}

} // namespace lanesync::agent
