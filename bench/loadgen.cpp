// lanesync_loadgen: a load generator for the local API (and, built with libnats, for a NATS
// JetStream stream), so that every column of scripts/bench.sh comes from one client.
//
// Open loop (--rate R): request j is due at t0 + j * batch / R whatever the answers do, and its
// latency is measured from that intended time, so a request held back because every
// connection is busy still counts from when it should have gone out (no coordinated
// omission). Closed loop (--inflight K): K requests in flight on K connections, latency from
// the actual send. --timestamps FILE reads ids and reports each message's peer_acked_at minus
// created_at as the lane recorded them (millisecond resolution). --fleet drives the edge
// function as many lanes instead (loadgen_fleet.cpp). Prints one JSON line.
#include "bench/loadgen.hpp"

#include "cloud/http_client.hpp"
#include "cloud/wire.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>

namespace lanesync::bench {

namespace net = boost::asio;
using cloud::http_client;
using cloud::http_result;

schedule schedule::from(const options& o) {
    schedule s;
    s.open = o.rate > 0;
    std::size_t msgs = o.messages;
    if (msgs == 0 && s.open)
        msgs = static_cast<std::size_t>(std::llround(o.rate * o.duration_s));
    s.requests = std::max<std::size_t>(1, (msgs + o.batch - 1) / o.batch);
    if (s.open)
        s.period = std::chrono::nanoseconds(
            static_cast<std::int64_t>(1e9 * static_cast<double>(o.batch) / o.rate));
    return s;
}

void recorder::ok(std::chrono::nanoseconds latency, std::size_t messages) {
    lat_ns_.insert(lat_ns_.end(), messages, latency.count());
    ok_ += messages;
}

void recorder::error(const std::string& key, std::size_t messages) {
    errors_[key] += messages;
}

nlohmann::json recorder::summary(clock_type::time_point t0) {
    std::sort(lat_ns_.begin(), lat_ns_.end());
    // Nearest rank: the smallest latency that at least p of the messages did not exceed.
    auto pct = [&](double p) -> double {
        if (lat_ns_.empty())
            return 0;
        auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(lat_ns_.size())));
        return static_cast<double>(lat_ns_[std::clamp<std::size_t>(rank, 1, lat_ns_.size()) - 1]) /
               1e3;
    };
    double sum = 0;
    for (auto v : lat_ns_)
        sum += static_cast<double>(v);
    double secs = last_ > t0 ? std::chrono::duration<double>(last_ - t0).count() : 0;
    std::size_t failed = 0;
    for (const auto& [k, n] : errors_)
        failed += n;
    return {{"count", ok_},
            {"failed", failed},
            {"errors", errors_},
            {"p50_us", pct(0.50)},
            {"p99_us", pct(0.99)},
            {"p999_us", pct(0.999)},
            {"max_us", lat_ns_.empty() ? 0.0 : static_cast<double>(lat_ns_.back()) / 1e3},
            {"mean_us", lat_ns_.empty() ? 0.0 : sum / static_cast<double>(lat_ns_.size()) / 1e3},
            {"duration_s", secs},
            {"achieved_rate", secs > 0 ? static_cast<double>(ok_) / secs : 0.0}};
}

namespace {

/// One request of a run: what to send, and what its answer means.
class workload {
public:
    struct request {
        std::string method, target, body;
    };
    virtual ~workload() = default;
    virtual request make(std::size_t j) const = 0;
    /// Records the answer to request `j`, `latency` after its intended send time.
    virtual void answer(const http_result& r, std::chrono::nanoseconds latency, recorder& rec) = 0;
};

/// POST /v1/messages, one message or a {"messages": [...]} batch per request; 201 is success.
class publish_workload : public workload {
public:
    explicit publish_workload(const options& o) : o_(o) {
        target_ = "/v1/messages";
        if (!o.wait.empty())
            target_ += "?wait=" + o.wait + "&timeout_ms=" + std::to_string(o.timeout_ms);
        if (!o.ids_out.empty()) {
            ids_.open(o.ids_out, std::ios::trunc);
            if (!ids_)
                throw std::runtime_error("cannot write " + o.ids_out);
        }
    }

    request make(std::size_t j) const override {
        auto one = [&](std::size_t i) {
            return R"({"topic":"transaction","data":)" + sale_json(i, o_.payload) + "}";
        };
        if (o_.batch == 1)
            return {"POST", target_, one(j)};
        std::string body = R"({"messages":[)";
        for (std::size_t k = 0; k < o_.batch; ++k)
            body += (k ? "," : "") + one(j * o_.batch + k);
        return {"POST", target_, body + "]}"};
    }

    void answer(const http_result& r, std::chrono::nanoseconds latency, recorder& rec) override {
        if (r.fail != http_result::failure::none || r.status != 201)
            return rec.error(failure_key(r), o_.batch);
        rec.ok(latency, o_.batch);
        if (ids_.is_open())
            write_ids(r.body);
    }

private:
    /// The id of a single answer, or every "id" of the first array of a batch answer.
    void write_ids(const std::string& body) {
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (!j.is_object())
            return;
        if (j.contains("id") && j["id"].is_string()) {
            ids_ << j["id"].get<std::string>() << '\n';
            return;
        }
        for (const auto& [k, v] : j.items())
            if (v.is_array()) {
                for (const auto& m : v)
                    if (m.is_object() && m.contains("id") && m["id"].is_string())
                        ids_ << m["id"].get<std::string>() << '\n';
                return;
            }
    }

    const options& o_;
    std::string target_;
    std::ofstream ids_;
};

/// RFC 3339 UTC ("2026-11-22T03:57:20.123Z") as microseconds since the epoch.
std::optional<std::int64_t> unix_us(const nlohmann::json& v) {
    if (!v.is_string())
        return std::nullopt;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0;
    double sec = 0;
    if (std::sscanf(v.get_ref<const std::string&>().c_str(), "%d-%d-%dT%d:%d:%lfZ", &y, &mo, &d, &h,
                    &mi, &sec) != 6)
        return std::nullopt;
    using namespace std::chrono;
    auto date =
        sys_days(year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)});
    auto us = duration_cast<microseconds>(date.time_since_epoch()).count();
    return us + (std::int64_t{h} * 3600 + mi * 60) * 1'000'000 + std::llround(sec * 1e6);
}

/// GET /v1/messages/{id} for ids from a file; records peer_acked_at - created_at.
class timestamps_workload : public workload {
public:
    explicit timestamps_workload(const std::string& path) {
        std::ifstream in(path);
        if (!in)
            throw std::runtime_error("cannot read " + path);
        for (std::string line; std::getline(in, line);)
            if (!line.empty())
                ids_.push_back(line);
    }
    std::size_t size() const { return ids_.size(); }

    request make(std::size_t j) const override { return {"GET", "/v1/messages/" + ids_[j], {}}; }

    void answer(const http_result& r, std::chrono::nanoseconds, recorder& rec) override {
        if (r.fail != http_result::failure::none || r.status != 200)
            return rec.error(failure_key(r), 1);
        auto m = nlohmann::json::parse(r.body, nullptr, false);
        auto created = m.is_object() ? unix_us(m["created_at"]) : std::nullopt;
        auto acked = m.is_object() ? unix_us(m["peer_acked_at"]) : std::nullopt;
        if (!created || !acked)
            return rec.error("not peer_ack", 1);
        rec.ok(std::chrono::microseconds(*acked - *created), 1);
    }

private:
    std::vector<std::string> ids_;
};

/// What the workers of one run share (one io thread: no locking).
struct run_state {
    workload& work;
    schedule sched;
    recorder rec;
    std::size_t next = 0;
    clock_type::time_point t0;
};

/// One connection's loop: take the next request, wait for its intended time (open loop),
/// send it and record the answer; ends when every request is taken.
net::awaitable<void> worker(http_client& c, run_state& st) {
    net::steady_timer timer(co_await net::this_coro::executor);
    for (;;) {
        std::size_t j = st.next++;
        if (j >= st.sched.requests)
            co_return;
        auto req = st.work.make(j);
        auto intended = st.sched.open ? st.sched.intended(st.t0, j) : clock_type::now();
        if (intended > clock_type::now()) {
            timer.expires_at(intended);
            co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        }
        http_result r = co_await c.send(req.method, req.target, std::move(req.body));
        auto done = clock_type::now();
        st.rec.finished_at(done);
        st.work.answer(r, done - intended, st.rec);
    }
}

/// Runs `aw` to completion on `ioc` (exceptions propagate out of run()).
void run_to_end(net::io_context& ioc, net::awaitable<void> aw) {
    net::co_spawn(ioc, std::move(aw), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
    ioc.run();
    ioc.restart();
}

/// Whether a 201 says "pending": at the top (one message) or for a message of a batch answer.
bool answered_pending(const std::string& body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object())
        return false;
    if (j.value("state", "") == "pending")
        return true;
    if (auto m = j.find("messages"); m != j.end() && m->is_array())
        for (const auto& e : *m)
            if (e.is_object() && e.value("state", "") == "pending")
                return true;
    return false;
}

/// Whether the lane supports what the run needs (batch body, ?wait=): one request of the
/// run's shape. A reason to skip when the lane refuses it (400) or ignores ?wait= (201 with
/// state pending); throws when the lane cannot be used at all.
std::optional<std::string> probe(net::io_context& ioc, http_client& c, const workload& w,
                                 const options& o) {
    http_result r;
    run_to_end(ioc, [&]() -> net::awaitable<void> {
        auto req = w.make(0);
        r = co_await c.send(req.method, req.target, std::move(req.body));
    }());
    if (r.fail != http_result::failure::none)
        throw std::runtime_error("cannot reach the lane: " + r.error);
    auto why = cloud::wire::error_text(r.body);
    if (r.status == 400)
        return "the lane refused it: " + why;
    if (!o.wait.empty() && r.status == 201 && answered_pending(r.body))
        return "the lane ignores ?wait= (it answered 201 with state pending)";
    if (r.status != 201 && r.status != 202)
        throw std::runtime_error("the lane answered " + std::to_string(r.status) + ": " + why);
    return std::nullopt;
}

cloud::wire::endpoint parse_url(const std::string& url) {
    std::string rest = url.starts_with("http://") ? url.substr(7) : url;
    if (auto slash = rest.find('/'); slash != std::string::npos)
        rest.resize(slash);
    auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0)
        throw CLI::ValidationError("--url", "expected http://HOST:PORT, got '" + url + "'");
    cloud::wire::endpoint ep;
    ep.host = rest.substr(0, colon);
    std::uint16_t port = 0;
    auto digits = std::string_view(rest).substr(colon + 1);
    auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (err != std::errc() || end != digits.data() + digits.size() || port == 0)
        throw CLI::ValidationError("--url", "bad port in '" + url + "'");
    ep.port = port;
    boost::system::error_code ec;
    net::ip::make_address(ep.host, ec);
    ep.host_is_ip = !ec;
    ep.host_header = rest;
    return ep;
}

/// The HTTP part of a run: probe (batch/wait), open every connection, then the schedule.
nlohmann::json run_http(const options& o) {
    net::io_context ioc(1);
    auto ep = parse_url(o.url);
    auto timeout = std::chrono::milliseconds(o.timeout_ms + 30'000);
    std::unique_ptr<workload> work;
    schedule sched = schedule::from(o);
    if (!o.timestamps.empty()) {
        auto t = std::make_unique<timestamps_workload>(o.timestamps);
        sched = {false, t->size(), {}};
        work = std::move(t);
    } else {
        work = std::make_unique<publish_workload>(o);
    }
    std::size_t n = o.inflight > 0 ? o.inflight : o.connections;
    std::vector<std::unique_ptr<http_client>> clients;
    for (std::size_t k = 0; k < std::min(n, sched.requests); ++k)
        clients.push_back(std::make_unique<http_client>(ioc.get_executor(), ep, nullptr,
                                                        std::string(), timeout, 64u << 20));
    if (o.timestamps.empty() && (o.batch > 1 || !o.wait.empty()))
        if (auto why = probe(ioc, *clients.front(), *work, o))
            return {{"skipped", *why}};
    // Every connection is opened (GET /healthz) before the clock starts.
    std::string unreachable;
    for (auto& c : clients)
        net::co_spawn(ioc, c->send("GET", "/healthz"), [&](std::exception_ptr, http_result r) {
            if (r.fail != http_result::failure::none)
                unreachable = r.error;
        });
    ioc.run();
    ioc.restart();
    if (!unreachable.empty())
        throw std::runtime_error("cannot reach the lane: " + unreachable);

    run_state st{*work, sched, {}, 0, clock_type::now() + std::chrono::milliseconds(1)};
    for (auto& c : clients)
        net::co_spawn(ioc, worker(*c, st), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    ioc.run();
    return st.rec.summary(st.t0);
}

void add_options(CLI::App& app, options& o) {
    app.add_option("--url", o.url, "lanesync local API, http://127.0.0.1:PORT");
    app.add_option("--jetstream", o.jetstream,
#ifdef LANESYNC_LOADGEN_JETSTREAM
                   "NATS URL (nats://127.0.0.1:4222): publish to a JetStream stream instead");
#else
                   "not available: this build has no libnats (install libnats-dev, rebuild)");
#endif
    app.add_option("--rate", o.rate, "Open loop: messages per second")->check(CLI::PositiveNumber);
    app.add_option("--duration", o.duration_s, "Open loop: seconds (default 10)")
        ->check(CLI::PositiveNumber);
    app.add_option("--inflight", o.inflight, "Closed loop: requests in flight")
        ->check(CLI::PositiveNumber);
    app.add_option("--messages", o.messages, "Messages in all (open loop: rate * duration)");
    app.add_option("--connections", o.connections, "Open loop: keep-alive connections (64)")
        ->check(CLI::PositiveNumber);
    app.add_option("--batch", o.batch, "Messages per request; > 1 sends {\"messages\": [...]}")
        ->check(CLI::PositiveNumber);
    app.add_option("--wait", o.wait, "peer_ack or cloud_ack: POST /v1/messages?wait=STATE")
        ->check(CLI::IsMember({"peer_ack", "cloud_ack"}));
    app.add_option("--timeout-ms", o.timeout_ms, "timeout_ms of ?wait= (5000)");
    app.add_option("--payload", o.payload, "Bytes of each message's data object (250)");
    app.add_option("--ids-out", o.ids_out, "Write the id of every 201'd message to this file");
    app.add_option("--timestamps", o.timestamps,
                   "File of ids: report peer_acked_at - created_at of each (needs --url)");
    app.add_option("--label", o.label, "Copied into the result line");
    app.add_option("--js-stream", o.js_stream, "JetStream stream (created when missing)");
    app.add_option("--js-subject", o.js_subject, "Subject published to (bench.sale)");
    app.add_option("--js-replicas", o.js_replicas, "Replicas of a stream created here (1)");
}

/// The fields every result line carries, from the options.
nlohmann::json describe(const options& o) {
    bool js = !o.jetstream.empty();
    std::string from = !o.timestamps.empty() ? "lane timestamps: created_at to peer_acked_at (ms)"
                       : o.rate > 0          ? "intended send time"
                                             : "send time";
    return {{"label", o.label},
            {"target", js ? "jetstream" : "lanesync"},
            {"url", js ? o.jetstream : o.url},
            {"mode", !o.timestamps.empty() ? "timestamps"
                     : o.rate > 0          ? "open"
                                           : "closed"},
            {"rate", o.rate},
            {"inflight", o.inflight},
            {"connections", js               ? 1
                            : o.inflight > 0 ? o.inflight
                                             : o.connections},
            {"publish", o.batch > 1 ? "batch" : "single"},
            {"batch", o.batch},
            {"wait", o.wait.empty() ? "none" : o.wait},
            {"payload_bytes", o.payload},
            {"latency_from", from}};
}

void check_options(const options& o) {
    if (o.url.empty() == o.jetstream.empty())
        throw CLI::ValidationError("give exactly one of --url and --jetstream");
    if (!o.url.empty())
        parse_url(o.url); // a bad URL is a usage error (exit 2), not a failed run
    if (!o.timestamps.empty()) {
        if (o.url.empty())
            throw CLI::ValidationError("--timestamps needs --url");
        return;
    }
    if ((o.rate > 0) == (o.inflight > 0))
        throw CLI::ValidationError("give exactly one of --rate (open loop) and --inflight");
    if (o.inflight > 0 && o.messages == 0)
        throw CLI::ValidationError("--inflight needs --messages");
#ifndef LANESYNC_LOADGEN_JETSTREAM
    if (!o.jetstream.empty())
        throw CLI::ValidationError("--jetstream: this build has no libnats");
#endif
}

} // namespace

std::string failure_key(const http_result& r) {
    return r.fail != http_result::failure::none ? cloud::outcome_label(r.fail)
                                                : std::to_string(r.status);
}

#ifndef LANESYNC_LOADGEN_JETSTREAM
nlohmann::json run_jetstream(const options&) {
    throw std::runtime_error("this build has no libnats: --jetstream is not available");
}
#endif

} // namespace lanesync::bench

int main(int argc, char** argv) {
    using namespace lanesync::bench;
    options o;
    fleet_options f;
    CLI::App app{"lanesync_loadgen: open- or closed-loop load on a lane's local API or a "
                 "JetStream stream; prints one JSON line of results"};
#ifdef LANESYNC_LOADGEN_JETSTREAM
    app.footer("Built with libnats: --jetstream available.\nExit codes: 0 ok (also when skipped), "
               "1 runtime failure, 2 usage.");
#else
    app.footer("Built without libnats: --jetstream is not available.\nExit codes: 0 ok (also "
               "when skipped), 1 runtime failure, 2 usage.");
#endif
    add_options(app, o);
    add_fleet_options(app, f);
    try {
        app.parse(argc, argv);
        f.on ? check_fleet(o, f) : check_options(o);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    auto line = f.on ? nlohmann::json::object() : describe(o);
    try {
        line.update(f.on ? run_fleet(o, f) : o.jetstream.empty() ? run_http(o) : run_jetstream(o));
    } catch (const std::exception& e) {
        line["fatal"] = e.what();
        std::cout << line.dump() << std::endl;
        return 1;
    }
    std::cout << line.dump() << std::endl;
    return 0;
}
