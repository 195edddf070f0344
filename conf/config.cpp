#include "conf/config.hpp"

#include "conf/dotenv.hpp"
#include "conf/url.hpp"
#include "protocol/message.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

namespace lanesync::conf {
namespace {

using detail::quote_for_message;

// ---- the key table ------------------------------------------------------------------------

/// Longest accepted delay for the *_MS keys (one day): far beyond any sensible setting, and
/// small enough that `now + delay` can never overflow a clock.
constexpr std::uint64_t max_delay_ms = 86'400'000;
/// OUTBOX_RETENTION_DAYS upper bound (100 years), so day arithmetic cannot overflow.
constexpr std::uint64_t max_retention_days = 36'500;
/// PEER_SECRET minimum length in characters.
constexpr std::size_t min_peer_secret_chars = 16;

struct key_spec {
    const char* name;
    /// Shown when a key that must not be empty is empty ("the default, 8123").
    const char* default_text;
    /// Empty value = "not set" (optional keys whose default is empty/absent).
    bool empty_means_unset;
};

// Documentation order (docs/configuration.md, SPEC section 4).
constexpr key_spec key_table[] = {
    {"TERMINAL_ID", nullptr, false},
    {"STORE_ID", "store-1", false},
    {"TERMINAL_PORT", "8123", false},
    {"TERMINAL_BIND", "0.0.0.0", false},
    {"PEER_TERMINALS", "", true},
    {"PEER_SECRET", "", true},
    {"PEER_ACK_QUORUM", "1", false},
    {"PEER_TLS_CERT_FILE", "", true},
    {"PEER_TLS_KEY_FILE", "", true},
    {"PEER_CA_FILE", "", true},
    {"LOCAL_API_PORT", "TERMINAL_PORT + 1000", false},
    {"OUTBOX_PATH", "data/<TERMINAL_ID>.db", false},
    {"SUPABASE_URL", "", true},
    {"SUPABASE_SERVICE_KEY", "", true},
    {"SUPABASE_FUNCTION", "sync-pos-message", false},
    {"SUPABASE_CA_FILE", "", true},
    {"SYNC_BACKOFF_BASE_MS", "1000", false},
    {"SYNC_BACKOFF_MAX_MS", "60000", false},
    {"CLOUD_SYNC_INTERVAL_MS", "30000", false},
    {"CLOUD_BATCH_SIZE", "50", false},
    {"OUTBOX_RETENTION_DAYS", "30", false},
    {"MAX_MESSAGE_BYTES", "262144", false},
    {"LOG_LEVEL", "info", false},
    {"LOG_FORMAT", "text", false},
};

const key_spec* find_spec(std::string_view key) {
    for (const auto& k : key_table)
        if (key == k.name)
            return &k;
    return nullptr;
}

std::size_t doc_index(std::string_view key) {
    for (std::size_t i = 0; i < std::size(key_table); ++i)
        if (key == key_table[i].name)
            return i;
    return std::size(key_table);
}

// ---- "did you mean" -----------------------------------------------------------------------

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
    return out;
}

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
    std::string u = upper(key);
    std::optional<std::string> best;
    std::size_t best_d = max_distance + 1;
    for (const auto& k : key_table) {
        std::size_t d = edit_distance(u, k.name);
        if (d < best_d) {
            best_d = d;
            best = k.name;
        }
    }
    return best;
}

// ---- value sources and errors -------------------------------------------------------------

/// Where a key's value came from.
struct value_source {
    std::string value;
    std::size_t line = 0; ///< 1-based line in the file; 0 when from the environment
    bool from_env = false;
};

class checker {
public:
    checker(std::string source, std::map<std::string, value_source> values)
        : source_(std::move(source)), values_(std::move(values)) {}

    /// The key's value, or nullptr when neither the file nor the environment sets it.
    const value_source* get(std::string_view key) const {
        auto it = values_.find(std::string(key));
        return it == values_.end() ? nullptr : &it->second;
    }

    bool set(std::string_view key) const { return get(key) != nullptr; }

    /// "FILE:LINE: KEY: why", "FILE: KEY: why (value from the environment)" or "FILE: KEY: why".
    std::string message(std::string_view key, const std::string& why) const {
        const value_source* v = get(key);
        std::string out = source_;
        if (v && v->line > 0)
            out += ":" + std::to_string(v->line);
        out += ": " + std::string(key) + ": " + why;
        if (v && v->from_env)
            out +=
                " (value from the environment; the env file does not set " + std::string(key) + ")";
        return out;
    }

    [[noreturn]] void fail(std::string_view key, const std::string& why) const {
        throw config_error(message(key, why));
    }

    /// Whole number in [lo, hi]: digits only, no sign, no blanks, no unit.
    std::uint64_t number(std::string_view key, const std::string& text, std::uint64_t lo,
                         std::uint64_t hi) const {
        bool digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                                   [](char c) { return c >= '0' && c <= '9'; });
        if (!digits)
            fail(key, quote_for_message(text) +
                          " is not a whole number (digits only: no sign, blanks or unit)");
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        std::string range = "(" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
        if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > hi))
            fail(key, text + " is too large " + range);
        if (ec != std::errc() || p != text.data() + text.size())
            fail(key, quote_for_message(text) + " is not a whole number");
        if (v < lo)
            fail(key, text + " is too small " + range);
        return v;
    }

private:
    std::string source_;
    std::map<std::string, value_source> values_;
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::size_t utf8_chars(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool function_name_ok(std::string_view s) {
    if (s.empty() || s.size() > 64)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

std::string errno_text(int e) {
    return std::generic_category().message(e);
}

// ---- one function per key -----------------------------------------------------------------

struct state {
    config& cfg;
    const checker& chk;
    std::vector<warning>& warnings;
    bool quorum_set = false;
};

void set_key(state& st, const std::string& key, const std::string& v) {
    const checker& chk = st.chk;
    config& cfg = st.cfg;
    auto port = [&] { return static_cast<std::uint16_t>(chk.number(key, v, 1, 65535)); };
    auto ms = [&](std::uint64_t lo) {
        return std::chrono::milliseconds(
            static_cast<std::int64_t>(chk.number(key, v, lo, max_delay_ms)));
    };
    // A file the agent reads at start-up (CA bundles, TLS certificate and key).
    auto readable_file = [&](const std::string& k, const std::string& path, const char* what) {
        struct stat sb {};
        if (::stat(path.c_str(), &sb) != 0)
            chk.fail(k, "cannot use " + quote_for_message(path) + ": " + errno_text(errno));
        if (!S_ISREG(sb.st_mode))
            chk.fail(k, quote_for_message(path) + " is not a regular file (" + what + ")");
        if (::access(path.c_str(), R_OK) != 0)
            chk.fail(k, "cannot read " + quote_for_message(path) + ": " + errno_text(errno));
        return path;
    };

    if (key == "TERMINAL_ID") {
        if (!protocol::valid_terminal_id(v))
            chk.fail(key, quote_for_message(v) +
                              " is not a valid lane id (1 to 32 characters of A-Z a-z 0-9 _ -)");
        cfg.terminal_id = v;
    } else if (key == "STORE_ID") {
        if (!protocol::valid_store_id(v))
            chk.fail(key, quote_for_message(v) +
                              " is not a valid store id (1 to 64 characters of A-Z a-z 0-9 _ -)");
        cfg.store_id = v;
    } else if (key == "TERMINAL_PORT") {
        cfg.terminal_port = port();
    } else if (key == "TERMINAL_BIND") {
        std::string addr = v;
        if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
            addr = addr.substr(1, addr.size() - 2); // [::] is accepted and stored as ::
        if (!detail::is_ip_literal(addr))
            chk.fail(key, quote_for_message(v) +
                              " is not an IP address literal (e.g. 0.0.0.0, 127.0.0.1, ::, ::1; "
                              "host names are not accepted)");
        cfg.terminal_bind = addr;
    } else if (key == "PEER_TERMINALS") {
        // (lowercase host, port) -> the peer number it first appeared as
        std::map<std::pair<std::string, std::uint16_t>, std::size_t> item_of;
        std::size_t item = 0;
        std::size_t start = 0;
        while (start <= v.size()) {
            auto comma = v.find(',', start);
            std::string_view raw = std::string_view(v).substr(
                start, comma == std::string::npos ? std::string::npos : comma - start);
            start = comma == std::string::npos ? v.size() + 1 : comma + 1;
            while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t'))
                raw.remove_prefix(1);
            while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t'))
                raw.remove_suffix(1);
            if (raw.empty())
                continue; // "a,,b" and a trailing comma are fine
            ++item;
            std::string why;
            auto u = detail::parse_peer_url_why(raw, why);
            if (!u)
                chk.fail(key, "peer " + std::to_string(item) + " " + quote_for_message(raw) + ": " +
                                  why);
            auto id = std::make_pair(lower(u->host), u->port);
            auto [it, fresh] = item_of.emplace(id, item);
            if (!fresh)
                chk.fail(key, "peer " + std::to_string(item) + " " + quote_for_message(raw) +
                                  " repeats peer " + std::to_string(it->second) +
                                  " (same host and port)");
            cfg.peers.push_back(std::move(*u));
        }
    } else if (key == "PEER_SECRET") {
        std::size_t n = utf8_chars(v);
        if (n < min_peer_secret_chars)
            chk.fail(key, "too short (" + std::to_string(n) + " chars, need at least " +
                              std::to_string(min_peer_secret_chars) + ")");
        cfg.peer_secret = v;
    } else if (key == "PEER_ACK_QUORUM") {
        cfg.peer_ack_quorum = chk.number(key, v, 1, 65535);
        st.quorum_set = true;
    } else if (key == "LOCAL_API_PORT") {
        cfg.local_api_port = port();
    } else if (key == "OUTBOX_PATH") {
        struct stat sb {};
        if (v.back() == '/' || (::stat(v.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)))
            chk.fail(key, quote_for_message(v) +
                              " is a directory; OUTBOX_PATH names the SQLite file, e.g. "
                              "data/L1.db");
        cfg.outbox_path = v;
    } else if (key == "SUPABASE_URL") {
        std::string why;
        bool loopback = false;
        auto url = detail::parse_cloud_url_why(v, why, loopback);
        if (!url) {
            // A URL with user info may carry a password: do not repeat it.
            std::string shown = v.find('@') == std::string::npos ? quote_for_message(v) + ": " : "";
            chk.fail(key, shown + why);
        }
        cfg.supabase_url = *url;
        if (!loopback && url->starts_with("http://"))
            st.warnings.push_back(
                {chk.message(key, "plain http:// to a host that is not loopback: "
                                  "SUPABASE_SERVICE_KEY would travel unencrypted (use https://)")});
    } else if (key == "SUPABASE_SERVICE_KEY") {
        bool clean = std::all_of(v.begin(), v.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return u > 0x20 && u != 0x7F;
        });
        if (!clean)
            chk.fail(key, "contains a blank or a control character (it is sent in an HTTP header; "
                          "check that it was pasted whole and on one line)");
        cfg.supabase_service_key = v;
    } else if (key == "SUPABASE_FUNCTION") {
        if (!function_name_ok(v))
            chk.fail(key, quote_for_message(v) +
                              " is not a valid function name (1 to 64 characters of A-Z a-z 0-9 "
                              "_ -)");
        cfg.supabase_function = v;
    } else if (key == "SUPABASE_CA_FILE") {
        cfg.supabase_ca_file = readable_file(key, v, "a PEM CA bundle");
    } else if (key == "PEER_TLS_CERT_FILE") {
        cfg.peer_tls_cert_file = readable_file(key, v, "a PEM certificate chain");
    } else if (key == "PEER_TLS_KEY_FILE") {
        cfg.peer_tls_key_file = readable_file(key, v, "a PEM private key");
    } else if (key == "PEER_CA_FILE") {
        cfg.peer_ca_file = readable_file(key, v, "a PEM CA bundle");
    } else if (key == "SYNC_BACKOFF_BASE_MS") {
        cfg.backoff_base = ms(1);
    } else if (key == "SYNC_BACKOFF_MAX_MS") {
        cfg.backoff_max = ms(1);
    } else if (key == "CLOUD_SYNC_INTERVAL_MS") {
        cfg.cloud_interval = ms(100);
    } else if (key == "CLOUD_BATCH_SIZE") {
        cfg.cloud_batch_size = chk.number(key, v, 1, 1000);
    } else if (key == "OUTBOX_RETENTION_DAYS") {
        cfg.retention_days = static_cast<int>(chk.number(key, v, 1, max_retention_days));
    } else if (key == "MAX_MESSAGE_BYTES") {
        cfg.max_message_bytes = chk.number(key, v, 1024, 16u << 20);
    } else if (key == "LOG_LEVEL") {
        std::string l = lower(v);
        if (l != "trace" && l != "debug" && l != "info" && l != "warn" && l != "error")
            chk.fail(key, quote_for_message(v) +
                              " is not a log level (trace, debug, info, warn or error)");
        cfg.log_level = l;
    } else if (key == "LOG_FORMAT") {
        std::string l = lower(v);
        if (l != "text" && l != "json")
            chk.fail(key, quote_for_message(v) + " is not a log format (text or json)");
        cfg.log_json = l == "json";
    }
}

/// Checks that involve more than one key, and the defaults that depend on other keys.
void finish(state& st) {
    const checker& chk = st.chk;
    config& cfg = st.cfg;

    if (!chk.set("TERMINAL_ID"))
        chk.fail("TERMINAL_ID",
                 "required: this lane's id, 1 to 32 characters of A-Z a-z 0-9 _ - (e.g. "
                 "TERMINAL_ID=L1)");

    if (!chk.set("LOCAL_API_PORT")) {
        unsigned api = cfg.terminal_port + 1000u;
        if (api > 65535)
            chk.fail("TERMINAL_PORT",
                     std::to_string(cfg.terminal_port) +
                         " leaves no default LOCAL_API_PORT (TERMINAL_PORT + 1000 = " +
                         std::to_string(api) + " is above 65535); set LOCAL_API_PORT");
        cfg.local_api_port = static_cast<std::uint16_t>(api);
    } else if (cfg.local_api_port == cfg.terminal_port) {
        chk.fail("LOCAL_API_PORT", "must differ from TERMINAL_PORT (both are " +
                                       std::to_string(cfg.terminal_port) + ")");
    }

    if (cfg.peer_tls_cert_file.empty() != cfg.peer_tls_key_file.empty())
        chk.fail(cfg.peer_tls_cert_file.empty() ? "PEER_TLS_CERT_FILE" : "PEER_TLS_KEY_FILE",
                 "PEER_TLS_CERT_FILE and PEER_TLS_KEY_FILE go together (the listener serves "
                 "wss:// only with both)");

    if (!cfg.peers.empty()) {
        if (cfg.peer_secret.empty())
            chk.fail("PEER_SECRET", "required when PEER_TERMINALS is set (a store-wide shared "
                                    "secret of at least 16 characters, the same on every lane)");
        if (cfg.peer_ack_quorum > cfg.peers.size())
            chk.fail("PEER_ACK_QUORUM",
                     std::to_string(cfg.peer_ack_quorum) + " is more than the number of peers (" +
                         std::to_string(cfg.peers.size()) + " in PEER_TERMINALS)");
        // A peer URL that names this very lane would make it gossip with itself.
        bool specific_bind = cfg.terminal_bind != "0.0.0.0" && cfg.terminal_bind != "::";
        for (const auto& p : cfg.peers) {
            bool self_host = detail::is_loopback_host(p.host) ||
                             (specific_bind && lower(p.host) == lower(cfg.terminal_bind));
            if (self_host && p.port == cfg.terminal_port)
                chk.fail("PEER_TERMINALS", quote_for_message(p.text) +
                                               " points at this lane itself (TERMINAL_PORT " +
                                               std::to_string(cfg.terminal_port) + ")");
        }
    } else if (st.quorum_set && cfg.peer_ack_quorum != 1) {
        st.warnings.push_back({chk.message(
            "PEER_ACK_QUORUM", std::to_string(cfg.peer_ack_quorum) +
                                   " has no effect without PEER_TERMINALS (a single lane uploads "
                                   "directly); using 1")});
        cfg.peer_ack_quorum = 1;
    }

    if (cfg.cloud_enabled() && cfg.supabase_service_key.empty())
        chk.fail("SUPABASE_SERVICE_KEY", "required when SUPABASE_URL is set");

    if (cfg.backoff_max < cfg.backoff_base) {
        std::string why_max = std::to_string(cfg.backoff_max.count()) +
                              " is below SYNC_BACKOFF_BASE_MS (" +
                              std::to_string(cfg.backoff_base.count()) + ")";
        if (chk.set("SYNC_BACKOFF_MAX_MS"))
            chk.fail("SYNC_BACKOFF_MAX_MS", why_max);
        chk.fail("SYNC_BACKOFF_BASE_MS", std::to_string(cfg.backoff_base.count()) +
                                             " is above SYNC_BACKOFF_MAX_MS (default " +
                                             std::to_string(cfg.backoff_max.count()) +
                                             "); raise SYNC_BACKOFF_MAX_MS too");
    }

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

} // namespace

const std::vector<std::string>& known_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> v;
        for (const auto& k : key_table)
            v.emplace_back(k.name);
        return v;
    }();
    return keys;
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
    std::map<std::string, value_source> values;
    for (auto& e : detail::parse_dotenv(text, source)) {
        if (find_spec(e.key)) {
            values[e.key] = value_source{std::move(e.value), e.line, false};
            continue;
        }
        std::string w = source + ":" + std::to_string(e.line) + ": unknown key " + e.key;
        if (auto s = suggest(e.key))
            w += " (did you mean " + *s + "?)";
        else
            w += " (ignored)";
        out.warnings.push_back({std::move(w)});
    }

    // 2. Known keys the file does not set come from the environment. An empty environment
    //    variable counts as unset (a stray `export LOG_LEVEL=` in a shell must not break).
    for (const auto& k : key_table) {
        if (values.count(k.name))
            continue;
        if (auto v = lookup(k.name); v && !v->empty())
            values[k.name] = value_source{std::move(*v), 0, true};
    }

    // 3. Each key on its own, in file order (then environment values in documentation order),
    //    so the first problem reported is the first one in the file.
    checker chk(source, values);
    std::vector<std::string> order;
    for (const auto& kv : values)
        order.push_back(kv.first);
    auto rank = [&](const std::string& key) {
        const value_source& v = values.at(key);
        return std::make_pair(v.line > 0 ? v.line : std::numeric_limits<std::size_t>::max(),
                              doc_index(key));
    };
    std::sort(order.begin(), order.end(),
              [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
    state st{out.cfg, chk, out.warnings};
    for (const auto& key : order) {
        const std::string& v = values.at(key).value;
        // 4. An empty value unsets the optional keys; for every other key it is a mistake.
        if (v.empty()) {
            const key_spec* spec = find_spec(key);
            if (spec->empty_means_unset)
                continue;
            if (!spec->default_text)
                chk.fail(key, "empty value; this key is required (e.g. " + key + "=L1)");
            chk.fail(key, std::string("empty value; leave the line out to use the default (") +
                              spec->default_text + ")");
        }
        set_key(st, key, v);
    }
    // 5. The rules between keys.
    finish(st);
    return out;
}

loaded load(const std::string& path, env_lookup lookup) {
    return load_text(read_file(path), path, std::move(lookup));
}

} // namespace lanesync::conf
