#include "conf/reload.hpp"

#include <algorithm>

namespace lanesync::conf {
namespace {

/// Which part of the agent takes a live key.
enum class taker { none, log_level, service_key, uploader, puller, both, retention };

/// One key: how to compare it, and for a key taken live, who takes it and how it is copied.
struct reload_key {
    const char* name;
    bool (*same)(const config& a, const config& b);
    /// Copies the key from `next` into `running`; nullptr for a key that cannot change live.
    void (*copy)(config& running, const config& next) = nullptr;
    taker by = taker::none;

    bool live() const { return copy != nullptr; }
};

template <auto M> bool same_member(const config& a, const config& b) {
    return a.*M == b.*M;
}
template <auto M> void copy_member(config& running, const config& next) {
    running.*M = next.*M;
}

bool same_peers(const config& a, const config& b) {
    return std::equal(a.peers.begin(), a.peers.end(), b.peers.begin(), b.peers.end(),
                      [](const peer_url& x, const peer_url& y) { return x.text == y.text; });
}

/// CLOUD_PULL_INTERVAL_MS is live between two non-zero values; to or from 0 starts or stops
/// the puller, which is built at start.
bool same_pull_switch(const config& a, const config& b) {
    return (a.cloud_pull_interval.count() > 0) == (b.cloud_pull_interval.count() > 0);
}

using C = config;

/// Every key of the key table, in its order (tests/conf/reload_test.cpp checks that none is
/// missing).
const reload_key keys[] = {
    {"TERMINAL_ID", same_member<&C::terminal_id>},
    {"STORE_ID", same_member<&C::store_id>},
    {"TERMINAL_PORT", same_member<&C::terminal_port>},
    {"TERMINAL_BIND", same_member<&C::terminal_bind>},
    {"PEER_TERMINALS", same_peers},
    {"PEER_SECRET", same_member<&C::peer_secret>},
    {"PEER_ACK_QUORUM", same_member<&C::peer_ack_quorum>},
    {"PEER_TLS_CERT_FILE", same_member<&C::peer_tls_cert_file>},
    {"PEER_TLS_KEY_FILE", same_member<&C::peer_tls_key_file>},
    {"PEER_CA_FILE", same_member<&C::peer_ca_file>},
    {"PEER_MAX_CONNECTIONS", same_member<&C::peer_max_connections>},
    {"LOCAL_API_PORT", same_member<&C::local_api_port>},
    {"LOCAL_API_MAX_CONNECTIONS", same_member<&C::local_api_max_connections>},
    {"OUTBOX_PATH", same_member<&C::outbox_path>},
    {"SUPABASE_URL", same_member<&C::supabase_url>},
    {"SUPABASE_SERVICE_KEY", same_member<&C::supabase_service_key>,
     copy_member<&C::supabase_service_key>, taker::service_key},
    {"SUPABASE_FUNCTION", same_member<&C::supabase_function>},
    {"SUPABASE_CA_FILE", same_member<&C::supabase_ca_file>},
    {"SYNC_BACKOFF_BASE_MS", same_member<&C::backoff_base>, copy_member<&C::backoff_base>,
     taker::both},
    {"SYNC_BACKOFF_MAX_MS", same_member<&C::backoff_max>, copy_member<&C::backoff_max>,
     taker::both},
    {"CLOUD_SYNC_INTERVAL_MS", same_member<&C::cloud_interval>, copy_member<&C::cloud_interval>,
     taker::uploader},
    {"CLOUD_BATCH_SIZE", same_member<&C::cloud_batch_size>, copy_member<&C::cloud_batch_size>,
     taker::uploader},
    {"CLOUD_PULL_INTERVAL_MS", same_member<&C::cloud_pull_interval>,
     copy_member<&C::cloud_pull_interval>, taker::puller},
    {"CLOUD_HEARTBEAT_MS", same_member<&C::cloud_heartbeat>, copy_member<&C::cloud_heartbeat>,
     taker::uploader},
    {"CLOUD_TAKEOVER_AFTER_S", same_member<&C::cloud_takeover_after>},
    {"OUTBOX_RETENTION_DAYS", same_member<&C::retention>, copy_member<&C::retention>,
     taker::retention},
    {"CATALOG_TOMBSTONE_DAYS", same_member<&C::catalog_tombstone_days>,
     copy_member<&C::catalog_tombstone_days>, taker::retention},
    {"MAX_MESSAGE_BYTES", same_member<&C::max_message_bytes>},
    {"TOPIC_PRIORITY", same_member<&C::topic_priority>, copy_member<&C::topic_priority>,
     taker::none},
    {"LOG_LEVEL", same_member<&C::log_level>, copy_member<&C::log_level>, taker::log_level},
    {"LOG_FORMAT", same_member<&C::log_json>},
};

void note_taker(reload_plan& p, taker t) {
    switch (t) {
    case taker::log_level:
        p.log_level = true;
        break;
    case taker::service_key:
        p.service_key = true;
        break;
    case taker::uploader:
        p.uploader = true;
        break;
    case taker::puller:
        p.puller = true;
        break;
    case taker::both:
        p.uploader = p.puller = true;
        break;
    case taker::retention:
        p.retention = true;
        break;
    case taker::none:
        break;
    }
}

} // namespace

reload_plan plan_reload(const config& running, const config& next) {
    reload_plan p;
    for (const auto& k : keys) {
        if (k.same(running, next))
            continue;
        if (!k.live()) {
            p.refused.emplace_back(k.name);
            continue;
        }
        p.changed.emplace_back(k.name);
        note_taker(p, k.by);
    }
    if (!same_pull_switch(running, next))
        p.refused.emplace_back("CLOUD_PULL_INTERVAL_MS (to or from 0)");
    return p;
}

std::string refusal_text(const reload_plan& plan) {
    if (plan.ok())
        return {};
    std::string s;
    for (const auto& k : plan.refused)
        s += (s.empty() ? "" : ", ") + k;
    return s + " cannot change while the agent runs (restart it to apply " +
           (plan.refused.size() == 1 ? "it" : "them") + "); nothing was applied";
}

void apply_live(config& running, const config& next) {
    for (const auto& k : keys)
        if (k.live())
            k.copy(running, next);
}

const std::vector<std::string>& live_keys() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto& k : keys)
            if (k.live())
                v.emplace_back(k.name);
        return v;
    }();
    return names;
}

std::vector<std::string> reload_key_names() {
    std::vector<std::string> v;
    for (const auto& k : keys)
        v.emplace_back(k.name);
    return v;
}

} // namespace lanesync::conf
