#include "conf/keys.hpp"

#include "base/text.hpp"
#include "conf/dotenv.hpp"
#include "conf/url.hpp"
#include "protocol/message.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <system_error>
#include <type_traits>
#include <utility>

namespace lanesync::conf::detail {

// ---- checker ------------------------------------------------------------------------------

const value_source* checker::get(std::string_view key) const {
    auto it = values_.find(std::string(key));
    return it == values_.end() ? nullptr : &it->second;
}

std::string checker::message(std::string_view key, const std::string& why) const {
    const value_source* v = get(key);
    std::string out = source_;
    if (v && v->line > 0)
        out += ":" + std::to_string(v->line);
    out += ": " + std::string(key) + ": " + why;
    if (v && v->from_env)
        out += " (value from the environment; the env file does not set " + std::string(key) + ")";
    return out;
}

void checker::fail(std::string_view key, const std::string& why) const {
    throw config_error(message(key, why));
}

std::uint64_t checker::number(std::string_view key, const std::string& text, std::uint64_t lo,
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

namespace {

/// Longest accepted delay for the *_MS keys (one day): far beyond any sensible setting, and
/// small enough that `now + delay` can never overflow a clock.
constexpr std::uint64_t max_delay_ms = 86'400'000;
/// OUTBOX_RETENTION_DAYS and CATALOG_TOMBSTONE_DAYS upper bound (100 years), so day arithmetic
/// cannot overflow.
constexpr std::uint64_t max_retention_days = 36'500;
constexpr std::int64_t ms_per_day = 86'400'000;
/// OUTBOX_RETENTION_DAYS: decimals it may have, and its lower bound in milliseconds (0.0001
/// days, 8.64 s: a retention for tests and tiny disks, never a reason to prune mid-upload).
constexpr std::size_t retention_decimals = 6;
constexpr std::int64_t min_retention_ms = ms_per_day / 10'000;
/// CLOUD_TAKEOVER_AFTER_S upper bound (one day, like the *_MS keys).
constexpr std::uint64_t max_takeover_s = 86'400;
/// PEER_SECRET minimum length in characters.
constexpr std::size_t min_peer_secret_chars = 16;
/// MAX_MESSAGE_BYTES upper bound (16 MiB).
constexpr std::uint64_t max_message_bytes_limit = 16u << 20;

std::string errno_text(int e) {
    return std::generic_category().message(e);
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

/// A file the agent reads at start-up (CA bundles, TLS certificate and key).
std::string readable_file(const checker& chk, std::string_view key, const std::string& path,
                          const char* what) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) != 0)
        chk.fail(key, "cannot use " + quote_for_message(path) + ": " + errno_text(errno));
    if (!S_ISREG(sb.st_mode))
        chk.fail(key, quote_for_message(path) + " is not a regular file (" + what + ")");
    if (::access(path.c_str(), R_OK) != 0)
        chk.fail(key, "cannot read " + quote_for_message(path) + ": " + errno_text(errno));
    return path;
}

// ---- shown defaults, read from config's member initializers ------------------------------

template <auto Field> std::string shown_default() {
    const config defaults{};
    const auto& v = defaults.*Field;
    using T = std::remove_cvref_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>)
        return v;
    else if constexpr (std::is_same_v<T, std::chrono::milliseconds> ||
                       std::is_same_v<T, std::chrono::seconds>)
        return std::to_string(v.count());
    else
        return std::to_string(v);
}

std::string no_default() {
    return "";
}

// ---- parsers shared by several keys -------------------------------------------------------

/// A whole number in [Lo, Hi].
template <auto Field, std::uint64_t Lo, std::uint64_t Hi>
void set_number(key_state& st, std::string_view key, const std::string& v) {
    using T = std::remove_cvref_t<decltype(st.cfg.*Field)>;
    st.cfg.*Field = static_cast<T>(st.chk.number(key, v, Lo, Hi));
}

template <auto Field> void set_port(key_state& st, std::string_view key, const std::string& v) {
    set_number<Field, 1, 65535>(st, key, v);
}

/// A delay in milliseconds, Lo to one day.
template <auto Field, std::uint64_t Lo>
void set_ms(key_state& st, std::string_view key, const std::string& v) {
    st.cfg.*Field = std::chrono::milliseconds(
        static_cast<std::int64_t>(st.chk.number(key, v, Lo, max_delay_ms)));
}

/// A delay in whole seconds, Lo to Hi.
template <auto Field, std::uint64_t Lo, std::uint64_t Hi>
void set_seconds(key_state& st, std::string_view key, const std::string& v) {
    st.cfg.*Field = std::chrono::seconds(static_cast<std::int64_t>(st.chk.number(key, v, Lo, Hi)));
}

template <auto Field> void set_ca_file(key_state& st, std::string_view key, const std::string& v) {
    st.cfg.*Field = readable_file(st.chk, key, v, "a PEM CA bundle");
}

// ---- one function per key (the keys that need more than the shared parsers) --------------

/// A period in milliseconds that 0 turns off: 0, or Lo to one day.
template <auto Field, std::uint64_t Lo>
void set_ms_or_off(key_state& st, std::string_view key, const std::string& v) {
    const auto n = st.chk.number(key, v, 0, max_delay_ms);
    if (n != 0 && n < Lo)
        st.chk.fail(key, std::to_string(n) + " is too small (0 = off, or " + std::to_string(Lo) +
                             "..86400000)");
    st.cfg.*Field = std::chrono::milliseconds(static_cast<std::int64_t>(n));
}

/// OUTBOX_RETENTION_DAYS: digits, optionally "." and 1 to 6 more digits; 0.0001 to 36500 days.
void set_retention(key_state& st, std::string_view key, const std::string& v) {
    const auto dot = v.find('.');
    const std::string whole = v.substr(0, dot);
    const std::string frac = dot == std::string::npos ? "" : v.substr(dot + 1);
    auto digits = [](const std::string& s) {
        return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (whole.empty() || !digits(whole) || !digits(frac) ||
        (dot != std::string::npos && (frac.empty() || frac.size() > retention_decimals)))
        st.chk.fail(key, quote_for_message(v) + " is not a number of days (digits, optionally "
                                                "a point and up to 6 decimals: 30, 0.5, 0.001)");
    const std::string range = "(0.0001..36500)";
    const auto digits_from = whole.find_first_not_of('0');
    const std::size_t significant = digits_from == whole.npos ? 0 : whole.size() - digits_from;
    if (significant > 5 || std::stoull(whole) > max_retention_days ||
        (std::stoull(whole) == max_retention_days && frac.find_first_not_of('0') != frac.npos))
        st.chk.fail(key, v + " is too large " + range);
    std::string micro = frac + std::string(retention_decimals - frac.size(), '0');
    // micro-days to ms: 86'400'000 / 1'000'000 = 86.4, exact in integers as x * 864 / 10.
    const std::int64_t ms = static_cast<std::int64_t>(std::stoull(whole)) * ms_per_day +
                            static_cast<std::int64_t>(std::stoull(micro)) * 864 / 10;
    if (ms < min_retention_ms)
        st.chk.fail(key, v + " is too small " + range);
    st.cfg.retention = std::chrono::milliseconds(ms);
}

std::string retention_default() {
    return days_text(config{}.retention);
}

void set_terminal_id(key_state& st, std::string_view key, const std::string& v) {
    if (!protocol::valid_terminal_id(v))
        st.chk.fail(key, quote_for_message(v) +
                             " is not a valid lane id (1 to 32 characters of A-Z a-z 0-9 _ -)");
    st.cfg.terminal_id = v;
}

void set_store_id(key_state& st, std::string_view key, const std::string& v) {
    if (!protocol::valid_store_id(v))
        st.chk.fail(key, quote_for_message(v) +
                             " is not a valid store id (1 to 64 characters of A-Z a-z 0-9 _ -)");
    st.cfg.store_id = v;
}

void set_terminal_bind(key_state& st, std::string_view key, const std::string& v) {
    std::string addr = v;
    if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
        addr = addr.substr(1, addr.size() - 2); // [::] is accepted and stored as ::
    if (!is_ip_literal(addr))
        st.chk.fail(key, quote_for_message(v) +
                             " is not an IP address literal (e.g. 0.0.0.0, 127.0.0.1, ::, ::1; "
                             "host names are not accepted)");
    st.cfg.terminal_bind = addr;
}

/// The next comma-separated item of `v` from `start`, blanks trimmed (may be empty).
std::string_view next_item(const std::string& v, std::size_t& start) {
    auto comma = v.find(',', start);
    std::string_view raw = std::string_view(v).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? v.size() + 1 : comma + 1;
    while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t'))
        raw.remove_prefix(1);
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t'))
        raw.remove_suffix(1);
    return raw;
}

void set_peer_terminals(key_state& st, std::string_view key, const std::string& v) {
    // (lowercase host, port) -> the peer number it first appeared as
    std::map<std::pair<std::string, std::uint16_t>, std::size_t> item_of;
    std::size_t item = 0;
    std::size_t start = 0;
    while (start <= v.size()) {
        std::string_view raw = next_item(v, start);
        if (raw.empty())
            continue; // "a,,b" and a trailing comma are fine
        ++item;
        std::string peer = "peer " + std::to_string(item) + " " + quote_for_message(raw);
        std::string why;
        auto u = parse_peer_url_why(raw, why);
        if (!u)
            st.chk.fail(key, peer + ": " + why);
        auto [it, fresh] = item_of.emplace(std::make_pair(text::lower(u->host), u->port), item);
        if (!fresh)
            st.chk.fail(key, peer + " repeats peer " + std::to_string(it->second) +
                                 " (same host and port)");
        st.cfg.peers.push_back(std::move(*u));
    }
}

void set_topic_priority(key_state& st, std::string_view key, const std::string& v) {
    std::size_t start = 0;
    std::size_t item = 0;
    while (start <= v.size()) {
        std::string_view raw = next_item(v, start);
        if (raw.empty())
            continue;
        ++item;
        const std::string entry = "entry " + std::to_string(item) + " " + quote_for_message(raw);
        auto colon = raw.find(':');
        if (colon == std::string_view::npos)
            st.chk.fail(key, entry + " is not TOPIC:PRIORITY (e.g. transaction:high)");
        std::string topic(raw.substr(0, colon));
        auto level = protocol::parse_priority(text::lower(raw.substr(colon + 1)));
        if (!protocol::valid_topic(topic))
            st.chk.fail(key, entry + ": the topic must be 1-64 characters of [a-z0-9_.-]");
        if (!level)
            st.chk.fail(key, entry + ": the priority must be critical, high, normal or low");
        if (!st.cfg.topic_priority.emplace(topic, *level).second)
            st.chk.fail(key, entry + " names topic " + topic + " a second time");
    }
}

void set_peer_secret(key_state& st, std::string_view key, const std::string& v) {
    std::size_t n = utf8_chars(v);
    if (n < min_peer_secret_chars)
        st.chk.fail(key, "too short (" + std::to_string(n) + " chars, need at least " +
                             std::to_string(min_peer_secret_chars) + ")");
    st.cfg.peer_secret = v;
}

void set_peer_ack_quorum(key_state& st, std::string_view key, const std::string& v) {
    set_number<&config::peer_ack_quorum, 1, 65535>(st, key, v);
    st.quorum_set = true;
}

void set_peer_tls_cert_file(key_state& st, std::string_view key, const std::string& v) {
    st.cfg.peer_tls_cert_file = readable_file(st.chk, key, v, "a PEM certificate chain");
}

void set_peer_tls_key_file(key_state& st, std::string_view key, const std::string& v) {
    st.cfg.peer_tls_key_file = readable_file(st.chk, key, v, "a PEM private key");
}

void set_outbox_path(key_state& st, std::string_view key, const std::string& v) {
    struct stat sb {};
    if (v.back() == '/' || (::stat(v.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)))
        st.chk.fail(key, quote_for_message(v) +
                             " is a directory; OUTBOX_PATH names the SQLite file, e.g. "
                             "data/L1.db");
    st.cfg.outbox_path = v;
}

void set_supabase_url(key_state& st, std::string_view key, const std::string& v) {
    std::string why;
    auto url = parse_cloud_url(v, &why);
    if (!url) {
        // A URL with user info may carry a password: do not repeat it.
        std::string shown = v.find('@') == std::string::npos ? quote_for_message(v) + ": " : "";
        st.chk.fail(key, shown + why);
    }
    if (!url->tls && !text::is_loopback_host(url->host))
        st.warnings.push_back(
            {st.chk.message(key, "plain http:// to a host that is not loopback: "
                                 "SUPABASE_SERVICE_KEY would travel unencrypted (use https://)")});
    st.cfg.supabase_url = url->text;
    st.cfg.cloud = std::move(*url);
}

void set_supabase_service_key(key_state& st, std::string_view key, const std::string& v) {
    bool clean = std::all_of(v.begin(), v.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7F;
    });
    if (!clean)
        st.chk.fail(key, "contains a blank or a control character (it is sent in an HTTP header; "
                         "check that it was pasted whole and on one line)");
    st.cfg.supabase_service_key = v;
}

void set_supabase_function(key_state& st, std::string_view key, const std::string& v) {
    if (!function_name_ok(v))
        st.chk.fail(key, quote_for_message(v) +
                             " is not a valid function name (1 to 64 characters of A-Z a-z 0-9 "
                             "_ -)");
    st.cfg.supabase_function = v;
}

void set_log_level(key_state& st, std::string_view key, const std::string& v) {
    std::string l = text::lower(v);
    if (l != "trace" && l != "debug" && l != "info" && l != "warn" && l != "error")
        st.chk.fail(key, quote_for_message(v) +
                             " is not a log level (trace, debug, info, warn or error)");
    st.cfg.log_level = l;
}

void set_log_format(key_state& st, std::string_view key, const std::string& v) {
    std::string l = text::lower(v);
    if (l != "text" && l != "json")
        st.chk.fail(key, quote_for_message(v) + " is not a log format (text or json)");
    st.cfg.log_json = l == "json";
}

// ---- the table ----------------------------------------------------------------------------

using C = config;

// Documentation order (docs/configuration.md, SPEC section 4).
// clang-format off
const key_def table[] = {
    {"TERMINAL_ID", nullptr, false,
     "this lane's id", set_terminal_id},
    {"STORE_ID", shown_default<&C::store_id>, false,
     "peers of another store are refused", set_store_id},
    {"TERMINAL_PORT", shown_default<&C::terminal_port>, false,
     "peer WebSocket listen port", set_port<&C::terminal_port>},
    {"TERMINAL_BIND", shown_default<&C::terminal_bind>, false,
     "peer listen address", set_terminal_bind},
    {"PEER_TERMINALS", no_default, true,
     "comma-separated peer URLs", set_peer_terminals},
    {"PEER_SECRET", no_default, true,
     "store-wide shared secret", set_peer_secret},
    {"PEER_ACK_QUORUM", shown_default<&C::peer_ack_quorum>, false,
     "how many peers must store a message before `peer_ack`", set_peer_ack_quorum},
    {"PEER_TLS_CERT_FILE", no_default, true,
     "PEM certificate chain for the peer listener", set_peer_tls_cert_file},
    {"PEER_TLS_KEY_FILE", no_default, true,
     "PEM private key of that certificate", set_peer_tls_key_file},
    {"PEER_CA_FILE", no_default, true,
     "CA bundle (PEM) that `wss://` peer certificates must chain to", set_ca_file<&C::peer_ca_file>},
    {"PEER_MAX_CONNECTIONS", shown_default<&C::peer_max_connections>, false,
     "most connections open at once on `TERMINAL_PORT`",
     set_number<&C::peer_max_connections, 1, 65535>},
    {"LOCAL_API_PORT", [] { return "TERMINAL_PORT + " + std::to_string(local_api_port_offset); }, false,
     "local HTTP API port (bound to 127.0.0.1)", set_port<&C::local_api_port>},
    {"LOCAL_API_MAX_CONNECTIONS", shown_default<&C::local_api_max_connections>, false,
     "most local API connections open at once",
     set_number<&C::local_api_max_connections, 1, 65535>},
    {"OUTBOX_PATH", [] { return std::string("data/<TERMINAL_ID>.db"); }, false,
     "the SQLite file", set_outbox_path},
    {"SUPABASE_URL", no_default, true,
     "`http://host[:port]` or `https://host[:port]`", set_supabase_url},
    {"SUPABASE_SERVICE_KEY", no_default, true,
     "sent as `apikey`, and as `Authorization: Bearer` too when it is a JWT", set_supabase_service_key},
    {"SUPABASE_FUNCTION", shown_default<&C::supabase_function>, false,
     "edge function name", set_supabase_function},
    {"SUPABASE_CA_FILE", no_default, true,
     "extra CA bundle (PEM)", set_ca_file<&C::supabase_ca_file>},
    {"SYNC_BACKOFF_BASE_MS", shown_default<&C::backoff_base>, false,
     "first retry delay", set_ms<&C::backoff_base, 1>},
    {"SYNC_BACKOFF_MAX_MS", shown_default<&C::backoff_max>, false,
     "retry delay cap", set_ms<&C::backoff_max, 1>},
    {"CLOUD_SYNC_INTERVAL_MS", shown_default<&C::cloud_interval>, false,
     "idle poll", set_ms<&C::cloud_interval, 100>},
    {"CLOUD_BATCH_SIZE", shown_default<&C::cloud_batch_size>, false,
     "messages per upload request", set_number<&C::cloud_batch_size, 1, 1000>},
    {"CLOUD_PULL_INTERVAL_MS", shown_default<&C::cloud_pull_interval>, false,
     "how often head office's changes are pulled from the cloud; `0` = never",
     set_ms_or_off<&C::cloud_pull_interval, 100>},
    {"CLOUD_HEARTBEAT_MS", shown_default<&C::cloud_heartbeat>, false,
     "an idle lane sends its summary to the cloud this often; `0` = never",
     set_ms_or_off<&C::cloud_heartbeat, 1000>},
    {"CLOUD_TAKEOVER_AFTER_S", shown_default<&C::cloud_takeover_after>, false,
     "a lane no lane has seen for this long has its messages uploaded by a peer",
     set_seconds<&C::cloud_takeover_after, 1, max_takeover_s>},
    {"OUTBOX_RETENTION_DAYS", retention_default, false,
     "`cloud_ack` messages older than this many days are pruned", set_retention},
    {"CATALOG_TOMBSTONE_DAYS", shown_default<&C::catalog_tombstone_days>, false,
     "deleted catalog rows (tombstones) older than this are purged",
     set_number<&C::catalog_tombstone_days, 1, max_retention_days>},
    {"MAX_MESSAGE_BYTES", shown_default<&C::max_message_bytes>, false,
     "largest accepted message body", set_number<&C::max_message_bytes, 1024, max_message_bytes_limit>},
    {"TOPIC_PRIORITY", no_default, true,
     "per-topic default priority, e.g. `transaction:high,audit:low` (others: `normal`)",
     set_topic_priority},
    {"LOG_LEVEL", shown_default<&C::log_level>, false,
     "`trace`, `debug`, `info`, `warn` or `error`", set_log_level},
    {"LOG_FORMAT", [] { return std::string(config{}.log_json ? "json" : "text"); }, false,
     "`text` or `json`", set_log_format},
};
// clang-format on

} // namespace

std::span<const key_def> key_table() {
    return table;
}

const key_def* find_key(std::string_view name) {
    for (const auto& k : table)
        if (name == k.name)
            return &k;
    return nullptr;
}

} // namespace lanesync::conf::detail
