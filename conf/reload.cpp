#include "conf/reload.hpp"

#include <algorithm>

namespace lanesync::conf {
namespace {

/// Which part of the agent takes a live key.
enum class taker { none, log_level, service_key, uploader, puller, both, retention };

/// One key: how to compare it, and whether (and by whom) it is taken live.
struct reload_key {
    const char* name;
    bool (*same)(const config& a, const config& b);
    bool live;
    taker by = taker::none;
    /// For a live key: copies it from `next` into `running`.
    void (*copy)(config& running, const config& next) = nullptr;
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
    {"TERMINAL_ID", same_member<&C::terminal_id>, false},
    {"STORE_ID", same_member<&C::store_id>, false},
    {"TERMINAL_PORT", same_member<&C::terminal_port>, false},
    {"TERMINAL_BIND", same_member<&C::terminal_bind>, false},
    {"PEER_TERMINALS", same_peers, false},
    {"PEER_SECRET", same_member<&C::peer_secret>, false},
    {"PEER_ACK_QUORUM", same_member<&C::peer_ack_quorum>, false},
    {"PEER_TLS_CERT_FILE", same_member<&C::peer_tls_cert_file>, false},
    {"PEER_TLS_KEY_FILE", same_member<&C::peer_tls_key_file>, false},
    {"PEER_CA_FILE", same_member<&C::peer_ca_file>, false},
    {"PEER_MAX_CONNECTIONS", same_member<&C::peer_max_connections>, false},
    {"LOCAL_API_PORT", same_member<&C::local_api_port>, false},
    {"LOCAL_API_MAX_CONNECTIONS", same_member<&C::local_api_max_connections>, false},
    {"OUTBOX_PATH", same_member<&C::outbox_path>, false},
    {"SUPABASE_URL", same_member<&C::supabase_url>, false},
    {"SUPABASE_SERVICE_KEY", same_member<&C::supabase_service_key>, true, taker::service_key,
     copy_member<&C::supabase_service_key>},
    {"SUPABASE_FUNCTION", same_member<&C::supabase_function>, false},
    {"SUPABASE_CA_FILE", same_member<&C::supabase_ca_file>, false},
    {"SYNC_BACKOFF_BASE_MS", same_member<&C::backoff_base>, true, taker::both,
     copy_member<&C::backoff_base>},
    {"SYNC_BACKOFF_MAX_MS", same_member<&C::backoff_max>, true, taker::both,
     copy_member<&C::backoff_max>},
    {"CLOUD_SYNC_INTERVAL_MS", same_member<&C::cloud_interval>, true, taker::uploader,
     copy_member<&C::cloud_interval>},
    {"CLOUD_BATCH_SIZE", same_member<&C::cloud_batch_size>, true, taker::uploader,
     copy_member<&C::cloud_batch_size>},
    {"CLOUD_PULL_INTERVAL_MS", same_member<&C::cloud_pull_interval>, true, taker::puller,
     copy_member<&C::cloud_pull_interval>},
    {"CLOUD_HEARTBEAT_MS", same_member<&C::cloud_heartbeat>, true, taker::uploader,
     copy_member<&C::cloud_heartbeat>},
    {"CLOUD_TAKEOVER_AFTER_S", same_member<&C::cloud_takeover_after>, false},
    {"OUTBOX_RETENTION_DAYS", same_member<&C::retention>, true, taker::retention,
     copy_member<&C::retention>},
    {"CATALOG_TOMBSTONE_DAYS", same_member<&C::catalog_tombstone_days>, true, taker::retention,
     copy_member<&C::catalog_tombstone_days>},
    {"MAX_MESSAGE_BYTES", same_member<&C::max_message_bytes>, false},
    {"TOPIC_PRIORITY", same_member<&C::topic_priority>, true, taker::none,
     copy_member<&C::topic_priority>},
    {"LOG_LEVEL", same_member<&C::log_level>, true, taker::log_level, copy_member<&C::log_level>},
    {"LOG_FORMAT", same_member<&C::log_json>, false},
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
        if (!k.live) {
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
        if (k.live && k.copy)
            k.copy(running, next);
}

const std::vector<std::string>& live_keys() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto& k : keys)
            if (k.live)
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
