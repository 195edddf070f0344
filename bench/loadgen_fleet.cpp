// lanesync_loadgen --fleet: N simulated lanes (a few stores, distinct terminal ids) uploading
// concurrently to the edge function, with the uploader's request shape: one keep-alive
// cloud::http_client per lane with one request in flight, bodies of at most CLOUD_BATCH_SIZE
// messages built by cloud::wire (encode_message, wrap_messages), answers read by
// wire::decode_results, each lane's seqs gap-free from the highest seq the cloud already holds
// of it (the GET the uploader's seq check uses). A failed request is sent again, same ids, same
// body, after --retry-ms.
//
// Backlog mode (no --lane-rate): every lane always has a full batch ready, so each sends its
// next request as soon as the previous one is answered: the fleet's sustained ceiling.
// Rate mode (--lane-rate R): each lane produces R messages/s (lanes evenly phased) and sends
// whatever is ready, up to a batch, whenever it has no request in flight, as the uploader does
// when woken by new messages; message latency runs from each message's intended creation time,
// so a queue behind a slow request shows (no coordinated omission).
#include "base/tls.hpp"
#include "bench/loadgen.hpp"
#include "cloud/http_client.hpp"
#include "cloud/wire.hpp"
#include "conf/config.hpp"
#include "protocol/message.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace lanesync::bench {

namespace net = boost::asio;
using cloud::http_client;
using cloud::http_result;

void add_fleet_options(CLI::App& app, fleet_options& f) {
    app.add_flag("--fleet", f.on,
                 "Drive the edge function as many lanes (--url is then SUPABASE_URL)");
    app.add_option("--lanes", f.lanes, "--fleet: simulated lanes (100)")
        ->check(CLI::Range(1, 5000));
    app.add_option("--stores", f.stores, "--fleet: stores the lanes are spread over (5)")
        ->check(CLI::Range(1, 99));
    app.add_option("--cloud-batch-size", f.batch, "--fleet: CLOUD_BATCH_SIZE (50)")
        ->check(CLI::Range(1, 1000));
    app.add_option("--lane-rate", f.lane_rate,
                   "--fleet: messages/s per lane (default: every lane has a backlog)")
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", f.warmup_s, "--fleet: seconds not counted at the start (1)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--key-file", f.key_file, "--fleet: file holding the service key");
    app.add_option("--ca-file", f.ca_file, "--fleet: extra CA (PEM) for an https SUPABASE_URL");
    app.add_option("--function", f.function, "--fleet: SUPABASE_FUNCTION (sync-pos-message)");
    app.add_option("--id-prefix", f.id_prefix, "--fleet: store ids are <prefix>-s01... (fleet)");
    app.add_option("--request-timeout-ms", f.request_timeout_ms,
                   "--fleet: per-request timeout (30000, the uploader's)");
    app.add_option("--retry-ms", f.retry_ms, "--fleet: pause before a failed request (200)");
}

void check_fleet(const options& o, const fleet_options& f) {
    std::string why;
    if (o.url.empty() || !conf::parse_cloud_url(o.url, &why))
        throw CLI::ValidationError("--url", "--fleet needs --url SUPABASE_URL: " + why);
    if (!o.jetstream.empty() || o.rate > 0 || o.inflight > 0 || !o.wait.empty())
        throw CLI::ValidationError("--fleet takes none of --jetstream, --rate, --inflight, --wait");
    if (f.key_file.empty())
        throw CLI::ValidationError("--fleet needs --key-file");
    if (f.warmup_s >= o.duration_s)
        throw CLI::ValidationError("--warmup must be shorter than --duration");
    if (f.id_prefix.empty() || f.id_prefix.size() > 60 ||
        !protocol::valid_store_id(f.id_prefix + "-s01"))
        throw CLI::ValidationError("--id-prefix", "must be 1..60 of [A-Za-z0-9_-]");
}

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);

/// A sale as the transaction topic documents it (docs/cloud.md), about `bytes` long.
std::string sale_data(std::size_t i, std::size_t bytes) {
    char head[400];
    std::snprintf(head, sizeof head,
                  R"({"transaction_id":"R-%08zu","currency":"EUR","total":11.14,"items":[)"
                  R"({"sku":"4006381333931","qty":2,"price":1.99},)"
                  R"({"sku":"5000112637922","qty":1,"price":4.49},)"
                  R"({"sku":"8710398512343","qty":3,"price":0.89}],"note":")",
                  i);
    std::string s = head;
    s.append(s.size() + 2 < bytes ? bytes - s.size() - 2 : 1, 'x');
    return s + "\"}";
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

/// One simulated lane: its ids, its connection, its next seq and the batch it is sending.
struct fleet_lane {
    std::string store, terminal;
    std::unique_ptr<http_client> client;
    std::uint64_t next_seq = 1;
    std::size_t made = 0;                        ///< rate mode: messages handed to a request so far
    clock_type::time_point start{};              ///< rate mode: when message 0 is due
    std::string body;                            ///< the request being sent (kept for a retry)
    std::vector<std::string> ids;                ///< its ids
    std::vector<clock_type::time_point> created; ///< rate mode: each message's intended time
};

/// What the lanes of a run share (one io thread: no locking).
struct fleet_run {
    const options& o;
    const fleet_options& f;
    std::chrono::nanoseconds period{0}; ///< rate mode: between two messages of one lane
    clock_type::time_point t0{}, from{}, end{};
    recorder requests, messages;
    std::size_t window_msgs = 0, window_requests = 0;
    std::size_t stored = 0, duplicate = 0, rejected = 0, failed_requests = 0;

    /// Rate mode: messages of `l` due by `now`.
    std::size_t due(const fleet_lane& l, clock_type::time_point now) const {
        if (now < l.start)
            return 0;
        return static_cast<std::size_t>((now - l.start) / period) + 1;
    }
};

/// The next request of `l`: `n` messages from its next seq.
void build_batch(fleet_run& run, fleet_lane& l, std::size_t n, clock_type::time_point now) {
    std::vector<std::string> parts;
    l.ids.clear();
    l.created.clear();
    auto wall = protocol::now_ms();
    for (std::size_t k = 0; k < n; ++k) {
        auto intended = run.period.count() > 0
                            ? l.start + run.period * static_cast<std::int64_t>(l.made + k)
                            : now;
        outbox::record rec;
        rec.msg.id = protocol::new_uuid_v7();
        rec.msg.origin = l.terminal;
        rec.msg.seq = l.next_seq + k;
        rec.msg.topic = "transaction";
        rec.msg.prio = protocol::priority::high;
        rec.msg.data = sale_data(rec.msg.seq, run.o.payload);
        rec.msg.created_at_ms =
            wall - std::chrono::duration_cast<std::chrono::milliseconds>(now - intended).count();
        rec.peer_acked_at_ms = rec.msg.created_at_ms + 1;
        rec.own = true;
        auto json = cloud::wire::encode_message(rec, l.store);
        if (!json)
            throw std::logic_error("fleet: a message the encoder refuses");
        parts.push_back(std::move(*json));
        l.ids.push_back(rec.msg.id);
        l.created.push_back(intended);
    }
    l.body = cloud::wire::wrap_messages(parts);
}

/// Records one answer; true when the batch is done with (stored, duplicate or rejected).
bool record(fleet_run& run, const fleet_lane& l, const http_result& r, clock_type::time_point sent,
            clock_type::time_point done) {
    bool counted = sent >= run.from && sent < run.end;
    auto fail = [&](const std::string& key) {
        ++run.failed_requests;
        if (counted)
            run.requests.error(key, 1);
        return false;
    };
    if (r.fail != http_result::failure::none || r.status != 200)
        return fail(failure_key(r));
    auto d = cloud::wire::decode_results(r.body, l.ids);
    if (!d.clean())
        return fail("bad_results");
    std::size_t ok = 0;
    for (const auto& res : d.results) {
        if (res.k == outbox::cloud_result::stored)
            ++run.stored, ++ok;
        else if (res.k == outbox::cloud_result::duplicate)
            ++run.duplicate, ++ok;
        else
            ++run.rejected;
    }
    if (done >= run.from && done <= run.end) {
        run.window_msgs += ok;
        ++run.window_requests;
    }
    if (counted) {
        run.requests.ok(done - sent, 1);
        if (run.period.count() > 0)
            for (auto c : l.created)
                run.messages.ok(done - c, 1);
    }
    run.requests.finished_at(done);
    return true;
}

/// One lane's upload loop until the end of the run (a request in flight then is finished).
net::awaitable<void> lane_loop(fleet_run& run, fleet_lane& l) {
    net::steady_timer timer(co_await net::this_coro::executor);
    bool rate = run.period.count() > 0;
    for (;;) {
        auto now = clock_type::now();
        if (now >= run.end)
            co_return;
        if (l.ids.empty()) {
            std::size_t ready = rate ? run.due(l, now) - l.made : run.f.batch;
            if (ready == 0) {
                timer.expires_at(
                    std::min(run.end, l.start + run.period * static_cast<std::int64_t>(l.made)));
                co_await timer.async_wait(as_tuple_awaitable);
                continue;
            }
            build_batch(run, l, std::min(ready, run.f.batch), now);
        }
        auto sent = clock_type::now();
        auto sending = l.client->post(l.body);
        http_result r = co_await std::move(sending);
        if (record(run, l, r, sent, clock_type::now())) {
            l.next_seq += l.ids.size();
            l.made += l.ids.size();
            l.ids.clear();
            continue;
        }
        timer.expires_after(std::chrono::milliseconds(run.f.retry_ms));
        co_await timer.async_wait(as_tuple_awaitable);
    }
}

/// Asks the cloud for the lane's highest seq (opens its connection, checks the key).
net::awaitable<void> prepare_lane(const cloud::wire::endpoint& ep, fleet_lane& l,
                                  std::string& error) {
    auto target = cloud::wire::highest_seq_target(ep, l.store, l.terminal);
    auto asking = l.client->send("GET", target);
    http_result r = co_await std::move(asking);
    auto a = cloud::wire::read_highest_seq(r, l.store, l.terminal);
    if (!a.seq) {
        if (error.empty())
            error = l.store + "/" + l.terminal + ": highest seq: " + a.error;
        co_return;
    }
    l.next_seq = *a.seq + 1;
}

std::string read_key(const std::string& path) {
    std::ifstream in(path);
    std::string key;
    if (!in || !std::getline(in, key))
        throw std::runtime_error("cannot read the key file " + path);
    while (!key.empty() && (key.back() == '\r' || key.back() == ' '))
        key.pop_back();
    if (key.empty())
        throw std::runtime_error("the key file " + path + " is empty");
    return key;
}

/// The lanes of the run, connected, each knowing its next seq.
std::vector<fleet_lane> make_lanes(net::io_context& ioc, const fleet_options& f,
                                   const cloud::wire::endpoint& ep, net::ssl::context* tls) {
    auto key = read_key(f.key_file);
    std::vector<fleet_lane> lanes(f.lanes);
    for (std::size_t k = 0; k < f.lanes; ++k) {
        char store[80], terminal[32];
        std::snprintf(store, sizeof store, "%s-s%02zu", f.id_prefix.c_str(), k % f.stores + 1);
        std::snprintf(terminal, sizeof terminal, "T%04zu", k / f.stores + 1);
        lanes[k].store = store;
        lanes[k].terminal = terminal;
        lanes[k].client = std::make_unique<http_client>(
            ioc.get_executor(), ep, tls, key, std::chrono::milliseconds(f.request_timeout_ms),
            std::size_t{4} << 20);
    }
    std::string error;
    for (auto& l : lanes)
        net::co_spawn(ioc, prepare_lane(ep, l, error), net::detached);
    ioc.run();
    ioc.restart();
    if (!error.empty())
        throw std::runtime_error(error);
    return lanes;
}

nlohmann::json describe(const options& o, const fleet_options& f) {
    return {{"label", o.label},
            {"target", "edge function"},
            {"url", o.url},
            {"mode", f.lane_rate > 0 ? "fleet rate" : "fleet backlog"},
            {"lanes", f.lanes},
            {"stores", f.stores},
            {"cloud_batch_size", f.batch},
            {"lane_rate", f.lane_rate},
            {"offered_rate", f.lane_rate * static_cast<double>(f.lanes)},
            {"duration_s", o.duration_s},
            {"warmup_s", f.warmup_s},
            {"payload_bytes", o.payload},
            {"request_latency_from", "send time"},
            {"message_latency_from", "intended creation time (rate mode)"}};
}

} // namespace

nlohmann::json run_fleet(const options& o, const fleet_options& f) {
    auto line = describe(o, f);
    std::string why;
    auto url = conf::parse_cloud_url(o.url, &why);
    auto ep = cloud::wire::make_endpoint(*url, f.function);
    std::unique_ptr<net::ssl::context> tls;
    if (ep.tls) {
        tls::trust_roots roots;
        if (!f.ca_file.empty())
            roots.ca_files.push_back(f.ca_file);
        tls = tls::make_client_context(roots);
    }
    net::io_context ioc(1);
    auto lanes = make_lanes(ioc, f, ep, tls.get());

    fleet_run run{o, f, {}, {}, {}, {}, {}, {}};
    if (f.lane_rate > 0)
        run.period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / f.lane_rate));
    run.t0 = clock_type::now() + std::chrono::milliseconds(5);
    auto secs = [](double s) {
        return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
    };
    run.from = run.t0 + secs(f.warmup_s);
    run.end = run.t0 + secs(o.duration_s);
    for (std::size_t k = 0; k < lanes.size(); ++k)
        lanes[k].start = run.t0 + run.period * static_cast<std::int64_t>(k) /
                                      static_cast<std::int64_t>(lanes.size());
    // A driver reading stderr learns when the clock starts (after every lane's GET).
    std::fprintf(stderr, "lanesync_loadgen: fleet clock started, %zu lanes\n", lanes.size());
    std::fflush(stderr);
    double cpu0 = cpu_seconds();
    for (auto& l : lanes)
        net::co_spawn(ioc, lane_loop(run, l), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    ioc.run();
    double cpu = cpu_seconds() - cpu0;

    std::size_t backlog = 0, connections = 0;
    for (const auto& l : lanes) {
        if (f.lane_rate > 0)
            backlog += run.due(l, run.end) - l.made;
        connections += l.client->connections_opened();
    }
    double window = std::chrono::duration<double>(run.end - run.from).count();
    auto req = run.requests.summary(run.from);
    line["request"] = {{"p50_us", req["p50_us"]},   {"p99_us", req["p99_us"]},
                       {"p999_us", req["p999_us"]}, {"max_us", req["max_us"]},
                       {"mean_us", req["mean_us"]}, {"count", req["count"]}};
    line["errors"] = req["errors"];
    if (f.lane_rate > 0)
        line["message_latency"] = run.messages.summary(run.from);
    line.update({{"messages", run.window_msgs},
                 {"msgs_per_s", static_cast<double>(run.window_msgs) / window},
                 {"requests_per_s", static_cast<double>(run.window_requests) / window},
                 {"count", run.window_msgs},
                 {"failed", req["failed"]},
                 {"failed_requests_all", run.failed_requests},
                 {"stored", run.stored},
                 {"duplicate", run.duplicate},
                 {"rejected", run.rejected},
                 {"backlog_at_end", backlog},
                 {"connections_opened", connections},
                 {"loadgen_cpu_s", cpu},
                 {"loadgen_cpu_share",
                  cpu / std::chrono::duration<double>(clock_type::now() - run.t0).count()}});
    return line;
}

} // namespace lanesync::bench
