#include "conf/config.hpp"

#include "base/text.hpp"
#include "conf/dotenv.hpp"
#include "conf/keys.hpp"
#include "conf/url.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

// The keys themselves (name, default, parser, description) are in keys.cpp; this file reads
// the file, runs each key's parser in file order, then the rules between keys.

namespace lanesync::conf {
namespace {

using detail::checker;
using detail::key_state;
using detail::quote_for_message;

std::size_t doc_index(std::string_view key) {
    auto keys = detail::key_table();
    for (std::size_t i = 0; i < keys.size(); ++i)
        if (key == keys[i].name)
            return i;
    return keys.size();
}

// ---- "did you mean" -----------------------------------------------------------------------

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

/// The known key closest to `key` (case-insensitive), when within 3 edits.
std::optional<std::string> suggest(std::string_view key) {
    constexpr std::size_t max_distance = 3;
    std::string u = text::upper(key);
    std::optional<std::string> best;
    std::size_t best_d = max_distance + 1;
    for (const auto& k : detail::key_table()) {
        std::size_t d = edit_distance(u, k.name);
        if (d < best_d) {
            best_d = d;
            best = std::string(k.name);
        }
    }
    return best;
}

std::string errno_text(int e) {
    return std::generic_category().message(e);
}

// ---- the rules between keys, and the defaults that depend on other keys ------------------

void finish_ports(const checker& chk, config& cfg) {
    if (!chk.set("LOCAL_API_PORT")) {
        unsigned api = cfg.terminal_port + detail::local_api_port_offset;
        if (api > 65535)
            chk.fail("TERMINAL_PORT", std::to_string(cfg.terminal_port) +
                                          " leaves no default LOCAL_API_PORT (TERMINAL_PORT + " +
                                          std::to_string(detail::local_api_port_offset) + " = " +
                                          std::to_string(api) +
                                          " is above 65535); set LOCAL_API_PORT");
        cfg.local_api_port = static_cast<std::uint16_t>(api);
    } else if (cfg.local_api_port == cfg.terminal_port) {
        chk.fail("LOCAL_API_PORT", "must differ from TERMINAL_PORT (both are " +
                                       std::to_string(cfg.terminal_port) + ")");
    }
}

void finish_peers(key_state& st) {
    const checker& chk = st.chk;
    config& cfg = st.cfg;
    if (cfg.peer_tls_cert_file.empty() != cfg.peer_tls_key_file.empty())
        chk.fail(cfg.peer_tls_cert_file.empty() ? "PEER_TLS_CERT_FILE" : "PEER_TLS_KEY_FILE",
                 "PEER_TLS_CERT_FILE and PEER_TLS_KEY_FILE go together (the listener serves "
                 "wss:// only with both)");
    if (cfg.peers.empty()) {
        if (st.quorum_set && cfg.peer_ack_quorum != 1) {
            st.warnings.push_back(
                {chk.message("PEER_ACK_QUORUM",
                             std::to_string(cfg.peer_ack_quorum) +
                                 " has no effect without PEER_TERMINALS (a single lane uploads "
                                 "directly); using 1")});
            cfg.peer_ack_quorum = 1;
        }
        return;
    }
    if (cfg.peer_secret.empty())
        chk.fail("PEER_SECRET", "required when PEER_TERMINALS is set (a store-wide shared "
                                "secret of at least 16 characters, the same on every lane)");
    if (cfg.peer_ack_quorum > cfg.peers.size())
        chk.fail("PEER_ACK_QUORUM", std::to_string(cfg.peer_ack_quorum) +
                                        " is more than the number of peers (" +
                                        std::to_string(cfg.peers.size()) + " in PEER_TERMINALS)");
    // A peer URL that names this very lane would make it gossip with itself.
    bool specific_bind = cfg.terminal_bind != "0.0.0.0" && cfg.terminal_bind != "::";
    for (const auto& p : cfg.peers) {
        bool self_host = text::is_loopback_host(p.host) ||
                         (specific_bind && text::lower(p.host) == text::lower(cfg.terminal_bind));
        if (self_host && p.port == cfg.terminal_port)
            chk.fail("PEER_TERMINALS", quote_for_message(p.text) +
                                           " points at this lane itself (TERMINAL_PORT " +
                                           std::to_string(cfg.terminal_port) + ")");
    }
}

void finish_backoff(const checker& chk, const config& cfg) {
    if (cfg.backoff_max >= cfg.backoff_base)
        return;
    if (chk.set("SYNC_BACKOFF_MAX_MS"))
        chk.fail("SYNC_BACKOFF_MAX_MS", std::to_string(cfg.backoff_max.count()) +
                                            " is below SYNC_BACKOFF_BASE_MS (" +
                                            std::to_string(cfg.backoff_base.count()) + ")");
    chk.fail("SYNC_BACKOFF_BASE_MS",
             std::to_string(cfg.backoff_base.count()) + " is above SYNC_BACKOFF_MAX_MS (default " +
                 std::to_string(cfg.backoff_max.count()) + "); raise SYNC_BACKOFF_MAX_MS too");
}

void finish(key_state& st) {
    const checker& chk = st.chk;
    config& cfg = st.cfg;
    if (!chk.set("TERMINAL_ID"))
        chk.fail("TERMINAL_ID",
                 "required: this lane's id, 1 to 32 characters of A-Z a-z 0-9 _ - (e.g. "
                 "TERMINAL_ID=L1)");
    finish_ports(chk, cfg);
    finish_peers(st);
    if (cfg.cloud_enabled() && cfg.supabase_service_key.empty())
        chk.fail("SUPABASE_SERVICE_KEY", "required when SUPABASE_URL is set");
    finish_backoff(chk, cfg);
    if (!chk.set("OUTBOX_PATH"))
        cfg.outbox_path = "data/" + cfg.terminal_id + ".db";
}

// ---- reading the file ---------------------------------------------------------------------

/// Reads at most max_env_file_bytes + 1 bytes (parse_dotenv reports the size error).
std::string read_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw config_error(path + ": cannot open: " + errno_text(errno));
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    std::string text;
    char buf[64 * 1024];
    while (text.size() <= detail::max_env_file_bytes) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw config_error(path + ": cannot read: " + errno_text(errno));
        }
        if (n == 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
}

/// Steps 1 and 2 of load_text: the file's known keys, then the environment's for the rest.
std::map<std::string, detail::value_source> gather(const std::string& text,
                                                   const std::string& source,
                                                   const env_lookup& lookup,
                                                   std::vector<warning>& warnings) {
    std::map<std::string, detail::value_source> values;
    for (auto& e : detail::parse_dotenv(text, source)) {
        if (detail::find_key(e.key)) {
            values[e.key] = detail::value_source{std::move(e.value), e.line, false};
            continue;
        }
        std::string w = source + ":" + std::to_string(e.line) + ": unknown key " + e.key;
        if (auto s = suggest(e.key))
            w += " (did you mean " + *s + "?)";
        else
            w += " (ignored)";
        warnings.push_back({std::move(w)});
    }
    // An empty environment variable counts as unset (a stray `export LOG_LEVEL=` in a shell
    // must not break).
    for (const auto& k : detail::key_table()) {
        std::string name(k.name);
        if (values.count(name))
            continue;
        if (auto v = lookup(name); v && !v->empty())
            values[name] = detail::value_source{std::move(*v), 0, true};
    }
    return values;
}

} // namespace

const std::vector<std::string>& known_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> v;
        for (const auto& k : detail::key_table())
            v.emplace_back(k.name);
        return v;
    }();
    return keys;
}

std::string days_text(std::chrono::milliseconds d) {
    constexpr std::int64_t per_day = 86'400'000;
    const std::int64_t ms = d.count();
    // ms to micro-days: x / 86.4 = x * 10 / 864, rounded to the nearest (carried into the days).
    const std::int64_t all_micro = ms / per_day * 1'000'000 + (ms % per_day * 10 + 432) / 864;
    std::string out = std::to_string(all_micro / 1'000'000);
    const std::int64_t micro = all_micro % 1'000'000;
    if (micro == 0)
        return out;
    std::string frac = std::to_string(micro);
    frac.insert(0, 6 - std::min<std::size_t>(6, frac.size()), '0');
    while (!frac.empty() && frac.back() == '0')
        frac.pop_back();
    return out + "." + frac;
}

loaded load_text(const std::string& text, const std::string& source, env_lookup lookup) {
    if (!lookup)
        lookup = [](const std::string& key) -> std::optional<std::string> {
            if (const char* v = std::getenv(key.c_str()))
                return std::string(v);
            return std::nullopt;
        };

    loaded out;
    out.cfg.source = source;

    // 1. Syntax, then sort the file's entries into known keys and unknown-key warnings.
    // 2. Known keys the file does not set come from the environment.
    auto values = gather(text, source, lookup, out.warnings);

    // 3. Each key on its own, in file order (then environment values in documentation order),
    //    so the first problem reported is the first one in the file.
    checker chk(source, values);
    std::vector<std::string> order;
    for (const auto& kv : values)
        order.push_back(kv.first);
    auto rank = [&](const std::string& key) {
        const auto& v = values.at(key);
        return std::make_pair(v.line > 0 ? v.line : std::numeric_limits<std::size_t>::max(),
                              doc_index(key));
    };
    std::sort(order.begin(), order.end(),
              [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
    key_state st{out.cfg, chk, out.warnings};
    for (const auto& key : order) {
        const std::string& v = values.at(key).value;
        const detail::key_def* def = detail::find_key(key);
        // 4. An empty value unsets the optional keys; for every other key it is a mistake.
        if (v.empty()) {
            if (def->empty_means_unset)
                continue;
            if (def->required())
                chk.fail(key, "empty value; this key is required (e.g. " + key + "=L1)");
            chk.fail(key, "empty value; leave the line out to use the default (" +
                              def->default_text() + ")");
        }
        def->set(st, key, v);
    }
    // 5. The rules between keys.
    finish(st);
    return out;
}

loaded load(const std::string& path, env_lookup lookup) {
    return load_text(read_file(path), path, std::move(lookup));
}

} // namespace lanesync::conf
