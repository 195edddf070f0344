#pragma once
/// lanesync_loadgen's shared pieces: the options of one run, its schedule, the latency
/// recorder and the sale payload. The HTTP driver (loadgen.cpp) and the JetStream driver
/// (loadgen_jetstream.cpp, built only when libnats is found) both use them, so both columns
/// of a comparison come from the same schedule, payload and statistics.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lanesync::cloud {
struct http_result;
}

namespace CLI {
class App;
}

namespace lanesync::bench {

using clock_type = std::chrono::steady_clock;

/// Everything one run is told on the command line.
struct options {
    std::string url;          ///< lanesync local API, http://HOST:PORT
    std::string jetstream;    ///< NATS URL: drive a JetStream stream instead
    double rate = 0;          ///< open loop: messages per second (0 = closed loop)
    double duration_s = 10;   ///< open loop: how long the schedule lasts
    std::size_t messages = 0; ///< total messages (open loop: rate * duration when 0)
    std::size_t inflight = 0; ///< closed loop: requests in flight (0 = open loop)
    std::size_t connections = 64;
    std::size_t batch = 1; ///< messages per request ({"messages": [...]} when > 1)
    std::string wait;      ///< "peer_ack": POST /v1/messages?wait=peer_ack
    std::uint32_t timeout_ms = 5000;
    std::size_t payload = 250; ///< bytes of the data object of one message
    std::string ids_out;       ///< file: ids of the messages answered 201, one per line
    std::string timestamps;    ///< file of ids: report peer_acked_at - created_at instead
    std::string label;         ///< copied into the result line
    std::string js_stream = "BENCH";
    std::string js_subject = "bench.sale";
    int js_replicas = 1;
};

/// When request `j` of a run is meant to be sent. Open loop: `t0 + j * batch / rate`, fixed
/// before the run whatever the answers do; closed loop has no schedule (a request goes out
/// when the previous one on its slot is answered).
struct schedule {
    bool open = false;
    std::size_t requests = 0;
    std::chrono::nanoseconds period{0};

    static schedule from(const options& o);
    clock_type::time_point intended(clock_type::time_point t0, std::size_t j) const {
        return t0 + period * static_cast<std::int64_t>(j);
    }
};

/// Latencies (one entry per message) and failures (by HTTP status or failure name) of a run.
/// Not thread-safe: callers on several threads serialize access themselves.
class recorder {
public:
    /// `messages` messages answered successfully after `latency`.
    void ok(std::chrono::nanoseconds latency, std::size_t messages);
    /// `messages` messages that failed with `key` ("503", "202", "network", ...).
    void error(const std::string& key, std::size_t messages);
    /// When the last answer arrived (for the achieved rate).
    void finished_at(clock_type::time_point t) {
        if (t > last_)
            last_ = t;
    }

    /// count, errors, p50/p99/p999/max/mean in microseconds, achieved_rate, duration_s.
    nlohmann::json summary(clock_type::time_point t0);

private:
    std::vector<std::int64_t> lat_ns_;
    std::map<std::string, std::size_t> errors_;
    std::size_t ok_ = 0;
    clock_type::time_point last_{};
};

/// The data object of sale number `i`: receipt, lines, totals, about `bytes` long.
std::string sale_json(std::size_t i, std::size_t bytes);

/// An outbox file and its WAL (the last commits may not be checkpointed yet), in bytes; a
/// missing file counts 0.
std::uintmax_t outbox_file_bytes(const std::string& path);

/// --fleet (loadgen_fleet.cpp): many simulated lanes uploading to the edge function the way the
/// uploader does: one keep-alive connection and one request in flight per lane, batches of
/// CLOUD_BATCH_SIZE encoded by cloud::wire, each lane's seqs gap-free from the cloud's highest.
struct fleet_options {
    bool on = false;
    std::size_t lanes = 100;
    std::size_t stores = 5;
    std::size_t batch = 50; ///< CLOUD_BATCH_SIZE: most messages per request
    double lane_rate = 0;   ///< messages/s each lane produces; 0 = every lane has a backlog
    double warmup_s = 1;    ///< answers in the first seconds are not counted
    std::string key_file;   ///< the service key (never printed)
    std::string ca_file;    ///< https: an extra CA (SUPABASE_CA_FILE)
    std::string function = "sync-pos-message";
    std::string id_prefix = "fleet"; ///< store ids <prefix>-s01..., terminal ids T0001...
    std::uint32_t request_timeout_ms = 30000;
    std::uint32_t retry_ms = 200; ///< pause before a failed request is sent again
};
void add_fleet_options(CLI::App& app, fleet_options& f);
/// Throws CLI::ValidationError for a usage error.
void check_fleet(const options& o, const fleet_options& f);
/// The whole result line of a fleet run.
nlohmann::json run_fleet(const options& o, const fleet_options& f);

/// An error's key in the result line: the failure's label ("timeout", ...) or the HTTP status.
std::string failure_key(const cloud::http_result& r);

/// Runs `o` against a JetStream stream (creating it when missing); the result line without
/// the common fields. Defined only when built with libnats.
nlohmann::json run_jetstream(const options& o);

} // namespace lanesync::bench
