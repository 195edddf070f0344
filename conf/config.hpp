#pragma once
/// One lane's configuration, read from a dotenv file (SPEC section 4, docs/configuration.md).
///
/// Format: KEY=VALUE lines, `#` comments, blank lines, optional `export ` prefix, values
/// optionally in single quotes (literal) or double quotes (\n \t \" \\ escapes), an unquoted
/// value ends at ` #`. A key set in the file wins over the same key in the inherited
/// environment; keys absent from the file are taken from the environment.

#include "protocol/publish.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::conf {

/// A peer URL from PEER_TERMINALS, split: ws[s]://host:port/path.
struct peer_url {
    std::string text; ///< as written
    bool tls = false; ///< wss://
    std::string host;
    std::uint16_t port = 0;
    std::string target = "/v1/peer";
};

/// SUPABASE_URL, parsed once here and handed to cloud/ (cloud::wire::make_endpoint):
/// http(s)://host[:port], an optional trailing '/' dropped.
struct cloud_url {
    std::string text;        ///< normalized for display: lowercase scheme, authority as written
    bool tls = false;        ///< https://
    std::string host;        ///< name or IP literal, IPv6 without brackets
    bool host_is_ip = false; ///< an IPv4 or IPv6 literal (no SNI for those, RFC 6066 section 3)
    std::uint16_t port = 0;  ///< as written, else the scheme's default (443 or 80)
    std::string base_path;   ///< path prefix before /functions/v1/...; always empty today
                             ///< (SUPABASE_URL takes no path)
};

/// The validated values. The member initializers are the defaults: the key table
/// (conf/keys.cpp, each key's parser and description) shows them from here, and
/// tests/conf/doc_test.cpp holds docs/configuration.md to the table.
struct config {
    std::string source;                 ///< the env file path (for messages)
    std::string terminal_id;            ///< TERMINAL_ID
    std::string store_id = "store-1";   ///< STORE_ID
    std::uint16_t terminal_port = 8123; ///< TERMINAL_PORT
    std::string terminal_bind = "0.0.0.0";
    std::vector<peer_url> peers;      ///< PEER_TERMINALS
    std::string peer_secret;          ///< PEER_SECRET (never log)
    std::size_t peer_ack_quorum = 1;  ///< PEER_ACK_QUORUM
    std::string peer_tls_cert_file;   ///< PEER_TLS_CERT_FILE: listener serves wss:// when set
    std::string peer_tls_key_file;    ///< PEER_TLS_KEY_FILE (with the cert)
    std::string peer_ca_file;         ///< PEER_CA_FILE: verifies wss:// peers; empty = system store
    std::uint16_t local_api_port = 0; ///< LOCAL_API_PORT (default TERMINAL_PORT + 1000)
    std::string outbox_path;          ///< OUTBOX_PATH (default data/<TERMINAL_ID>.db)
    std::string supabase_url;         ///< SUPABASE_URL as cloud_url::text; empty = cloud off
    std::optional<cloud_url> cloud;   ///< SUPABASE_URL parsed (load() sets both; see cloud_url_of)
    std::string supabase_service_key; ///< SUPABASE_SERVICE_KEY (never log)
    std::string supabase_function = "sync-pos-message";
    std::string supabase_ca_file;                    ///< SUPABASE_CA_FILE, empty = system store
    std::chrono::milliseconds backoff_base{1000};    ///< SYNC_BACKOFF_BASE_MS
    std::chrono::milliseconds backoff_max{60000};    ///< SYNC_BACKOFF_MAX_MS
    std::chrono::milliseconds cloud_interval{30000}; ///< CLOUD_SYNC_INTERVAL_MS
    std::size_t cloud_batch_size = 50;               ///< CLOUD_BATCH_SIZE (1..1000)
    /// CLOUD_PULL_INTERVAL_MS: how often head office's changes are pulled (sync-pull); 0 = never
    /// (the lane still gets them from its peers). cloud/puller.hpp.
    std::chrono::milliseconds cloud_pull_interval{30000};
    /// CLOUD_HEARTBEAT_MS: an idle lane sends its summary (docs/cloud.md "Lane health") this
    /// often; every upload carries it too. 0 = never.
    std::chrono::milliseconds cloud_heartbeat{300000};
    /// CLOUD_TAKEOVER_AFTER_S (1..86400): a lane no lane has seen for this long has its held
    /// messages uploaded by a peer (protocol::origins_to_cover).
    std::chrono::seconds cloud_takeover_after{300};
    /// OUTBOX_RETENTION_DAYS, a decimal number of days (0.0001..36500) held as milliseconds.
    std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};
    int catalog_tombstone_days = 30;        ///< CATALOG_TOMBSTONE_DAYS (deletes kept this long)
    std::size_t max_message_bytes = 262144; ///< MAX_MESSAGE_BYTES
    /// TOPIC_PRIORITY: the priority of a message whose request names none, by topic (others:
    /// normal). Priorities order the upload backlog (docs/uploader.md "Priorities").
    protocol::topic_priorities topic_priority;
    std::string log_level = "info"; ///< LOG_LEVEL
    bool log_json = false;          ///< LOG_FORMAT=json

    /// PEER_MAX_CONNECTIONS: connections open at once on TERMINAL_PORT (more: closed at accept).
    std::size_t peer_max_connections = 64;
    /// LOCAL_API_MAX_CONNECTIONS: local API connections open at once (more: closed at accept).
    std::size_t local_api_max_connections = 512;

    bool cloud_enabled() const { return !supabase_url.empty(); }
};

/// A configuration problem: `what()` reads "FILE:LINE: KEY: why" (LINE omitted when the value
/// came from the environment or a default). Never contains a secret value.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A non-fatal finding, e.g. an unknown key with a "did you mean" hint.
struct warning {
    std::string text; ///< "FILE:LINE: unknown key PEER_TERMINAL (did you mean PEER_TERMINALS?)"
};

struct loaded {
    config cfg;
    std::vector<warning> warnings;
};

/// Reads and validates an env file; `environ_lookup` supplies inherited values (defaults to
/// getenv; tests pass their own). Throws config_error on the first problem.
using env_lookup = std::function<std::optional<std::string>(const std::string& key)>;
loaded load(const std::string& path, env_lookup lookup = nullptr);

/// Same, from text already in memory (unit tests, and `source` used in messages).
loaded load_text(const std::string& text, const std::string& source, env_lookup lookup = nullptr);

/// The known keys, in documentation order.
const std::vector<std::string>& known_keys();

/// A duration as a decimal number of days, the way OUTBOX_RETENTION_DAYS is written: "30",
/// "1.5", "0.001" (at most 6 decimals, no trailing zeros).
std::string days_text(std::chrono::milliseconds d);

/// Parses one ws:// or wss:// URL; empty path means /v1/peer. nullopt when malformed.
std::optional<peer_url> parse_peer_url(const std::string& text);

/// Parses SUPABASE_URL's form (docs/configuration.md). nullopt when malformed, with the reason
/// in `*why` when given (the reason never repeats the URL).
std::optional<cloud_url> parse_cloud_url(std::string_view text, std::string* why = nullptr);

/// The cloud URL of `cfg`: `cfg.cloud` when it is the parse of `cfg.supabase_url` (as load()
/// leaves it), else `cfg.supabase_url` parsed now (a config built or edited in code). nullopt
/// when the cloud is off or the text does not parse (then `why` says why).
std::optional<cloud_url> cloud_url_of(const config& cfg, std::string& why);

} // namespace lanesync::conf
