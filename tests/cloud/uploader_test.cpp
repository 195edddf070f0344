// The uploader against a scripted fake edge function (fake_cloud.hpp) and a real outbox on a
// temp file. Waits are on conditions with deadlines; retry timing is measured with the fake
// server's receive timestamps.

#include "cloud/uploader.hpp"

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "fake_cloud.hpp"
#include "outbox/async.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <future>

using namespace lanesync;
using namespace lanesync::cloud_testing;
using lanesync::outbox::state;

namespace {

const std::string test_key = "sk_test_NEVER_SHOW_ME_4f9c2a";

conf::config base_config(const std::string& url) {
    conf::config c;
    c.terminal_id = "L1";
    c.store_id = "store-1";
    c.supabase_url = url;
    c.supabase_service_key = test_key;
    c.backoff_base = std::chrono::milliseconds(10);
    c.backoff_max = std::chrono::milliseconds(100);
    c.cloud_interval = std::chrono::milliseconds(60'000); // no idle polls unless a test wants them
    c.cloud_batch_size = 50;
    c.cloud_heartbeat = std::chrono::milliseconds(0); // the heartbeat tests turn it on
    return c;
}

std::uint64_t counter(const std::string& name, const std::string& labels = {}) {
    return metrics::global().get_counter(name, "", labels).value();
}

std::uint64_t requests_with(const std::string& outcome) {
    return counter("lanesync_upload_requests_total", "outcome=\"" + outcome + "\"");
}

/// Scheduling slack allowed on top of a retry delay when timing requests at the server.
/// LANESYNC_TEST_TIMING_SLACK_MS raises it for slow runs (valgrind, sanitizers).
double timing_slack_ms() {
    if (const char* v = std::getenv("LANESYNC_TEST_TIMING_SLACK_MS"))
        return std::atof(v);
#if defined(LANESYNC_CHECKING_BUILD)
    return 250.0; // the sanitizers' runtime, and a loaded CI machine running them
#else
    return 60.0;
#endif
}

/// The service key must never show in what the uploader reports.
void check_no_key(const cloud::status& s) {
    CHECK(s.last_error.find(test_key) == std::string::npos);
    CHECK(s.last_error.find("sk_test") == std::string::npos);
}

/// A lane: real outbox, a fake cloud, an uploader wired like the agent wires it.
struct rig {
    temp_dir dir;
    boost::asio::io_context ioc;
    std::unique_ptr<outbox::store> store;
    std::unique_ptr<fake_cloud> cloud;
    conf::config cfg;
    cloud::limits lim;
    std::unique_ptr<cloud::uploader> up;
    std::atomic<cloud::uploader*> notify_target{nullptr};
    std::vector<outbox::record> published;

    explicit rig(fake_cloud::script s, std::optional<fake_cloud::tls_files> tls = {}) {
        outbox::options o;
        o.path = dir.file("L1.db");
        o.terminal_id = "L1";
        o.store_id = "store-1";
        store = outbox::store::open(o);
        // As the agent does: every commit with new uploadable work wakes the uploader.
        store->set_commit_listener([this](const outbox::commit_info& ci) {
            if (auto* u = notify_target.load(); u && (ci.new_peer_ack || ci.requeued || ci.new_own))
                u->notify();
        });
        cloud = std::make_unique<fake_cloud>(ioc, std::move(s), std::move(tls));
        cfg = base_config(cloud->url());
        lim.request_timeout = std::chrono::milliseconds(3000);
        lim.not_found_retry = std::chrono::milliseconds(300);
    }

    ~rig() {
        if (up) {
            bool stopped = false;
            up->stop([&] { stopped = true; });
            CHECK(run_until(ioc, [&] { return stopped; }));
            notify_target = nullptr;
            up.reset();
        }
        cloud.reset();
        store->close();
    }

    cloud::uploader& make() {
        up = std::make_unique<cloud::uploader>(ioc, *store, cfg, lim);
        notify_target = up.get();
        return *up;
    }
    cloud::uploader& start() {
        make().start();
        return *up;
    }

    void publish(int n, const std::string& data = R"({"sku":"A1","qty":1})") {
        for (int i = 0; i < n; ++i) {
            protocol::publish_request r;
            r.topic = "transaction";
            r.data = data;
            auto out = outbox::publish_sync(*store, r);
            REQUIRE(out.k == outbox::publish_outcome::created);
            published.push_back(out.rec);
        }
    }

    outbox::counts counts() { return store->get_counts(); }
    bool wait_counts(std::uint64_t cloud_ack, std::uint64_t failed = 0,
                     std::chrono::milliseconds timeout = 10s) {
        // The store's counts and the uploader's own tally: the commit is visible to this thread
        // before the uploader's strand has handled its completion.
        return run_until(
            ioc,
            [&] {
                auto c = counts();
                auto s = up->get_status();
                return c.cloud_ack == cloud_ack && c.failed == failed &&
                       s.messages_acked == cloud_ack && s.messages_rejected == failed;
            },
            timeout);
    }
    outbox::record rec(std::uint64_t seq) { return *store->get(published.at(seq - 1).msg.id); }
    cloud::status status() const { return up->get_status(); }

    /// Gaps between consecutive requests as the server saw them, in ms.
    std::vector<double> gaps_ms() const {
        std::vector<double> out;
        const auto& r = cloud->requests();
        for (std::size_t i = 1; i < r.size(); ++i)
            out.push_back(std::chrono::duration<double, std::milli>(r[i].at - r[i - 1].at).count());
        return out;
    }
};

} // namespace

TEST_CASE("uploads a single-lane store's pending messages with the contract's request") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(3, R"({"qty":2,"sku":"A1"})");
    auto acked_before = counter("lanesync_cloud_acked_total");
    auto ok_before = requests_with("ok");
    r.start();
    REQUIRE(r.wait_counts(3));

    REQUIRE(r.cloud->requests().size() == 1);
    const auto& q = r.cloud->requests()[0];
    CHECK(q.method == "POST");
    CHECK(q.target == "/functions/v1/sync-pos-message");
    CHECK(q.headers.count("authorization") == 0); // test_key is not a JWT: apikey only
    CHECK(q.headers.at("apikey") == test_key);
    CHECK(q.headers.at("content-type") == "application/json");
    auto body = nlohmann::json::parse(q.body);
    REQUIRE(body["messages"].size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& m = body["messages"][i];
        const auto& p = r.published[i];
        CHECK(m["messageId"] == p.msg.id);
        CHECK(m["storeId"] == "store-1");
        CHECK(m["terminalId"] == "L1");
        CHECK(m["seq"] == i + 1);
        CHECK(m["topic"] == "transaction");
        CHECK(m["priority"] == "normal");
        CHECK(m["data"] == nlohmann::json{{"qty", 2}, {"sku", "A1"}});
        CHECK(m["timestamp"] == protocol::format_time_ms(p.msg.created_at_ms));
        CHECK(m["peerAckedAt"].is_null()); // single lane: uploaded from pending
    }

    auto s = r.status();
    CHECK(s.enabled);
    CHECK_FALSE(s.in_flight);
    CHECK(s.last_success_at_ms);
    CHECK(s.last_error.empty());
    CHECK(s.last_http_status == 200);
    CHECK(s.requests_ok == 1);
    CHECK(s.messages_acked == 3);
    CHECK(s.consecutive_failures == 0);
    CHECK_FALSE(s.next_attempt_at_ms);
    CHECK(counter("lanesync_cloud_acked_total") - acked_before == 3);
    CHECK(requests_with("ok") - ok_before == 1);
    // The key is registered as a log secret as soon as the uploader exists.
    CHECK(log::redact("key=" + test_key) == "key=***");

    // A later write is uploaded as soon as it commits (notify), not at the next idle poll.
    r.publish(2);
    REQUIRE(r.wait_counts(5, 0, 2s));
    CHECK(r.cloud->requests().at(1).seqs() == std::vector<std::uint64_t>{4, 5});
}

TEST_CASE("with peers configured only peer_ack messages are uploaded, with peerAckedAt") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.peers.push_back(conf::peer_url{"ws://127.0.0.1:1/v1/peer", false, "127.0.0.1", 1});
    r.publish(3);
    r.start();

    // L2 confirms messages 1 and 2: they become peer_ack, and the commit wakes the uploader.
    std::promise<outbox::peer_ack_outcome> p;
    r.store->peer_acked("L2", 2, 1, [&](outbox::peer_ack_outcome o) { p.set_value(o); });
    auto f = p.get_future();
    REQUIRE(run_until(r.ioc, [&] { return f.wait_for(0s) == std::future_status::ready; }));
    REQUIRE(f.get().ok);
    REQUIRE(r.wait_counts(2));
    CHECK(r.counts().pending == 1);
    REQUIRE(r.cloud->requests().size() == 1);
    CHECK(r.cloud->requests()[0].seqs() == std::vector<std::uint64_t>{1, 2});
    auto body = nlohmann::json::parse(r.cloud->requests()[0].body);
    CHECK(body["messages"][0]["peerAckedAt"].is_string());
    CHECK(r.rec(3).st == state::pending);
}

TEST_CASE("keep-alive: batches reuse one connection; a connection the server closed is reopened "
          "without counting a failure") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.cloud_batch_size = 2;
    r.lim.requests_in_flight = 1; // one round at a time: every request on one connection
    r.publish(6);
    auto retries_before = counter("lanesync_upload_retries_total");
    r.start();
    REQUIRE(r.wait_counts(6));
    CHECK(r.cloud->requests().size() == 3);
    CHECK(r.cloud->connections() == 1);

    // The server drops the idle connection (its keep-alive timeout). The client only finds out
    // when it sends the next request on it.
    r.cloud->close_connections();
    REQUIRE(run_until(r.ioc, [&] { return r.cloud->open_connections() == 0; }));
    r.publish(2);
    REQUIRE(r.wait_counts(8));
    CHECK(r.cloud->connections() == 2);

    // An answer that says keep-alive and then closes at once: same, no failure.
    r.cloud->set_script([](const seen_request& q) {
        auto rep = ack_all(q);
        rep.close_after = true;
        return rep;
    });
    r.publish(2);
    REQUIRE(r.wait_counts(10));
    r.publish(2);
    REQUIRE(r.wait_counts(12));

    auto s = r.status();
    CHECK(s.requests_failed == 0);
    CHECK(s.consecutive_failures == 0);
    CHECK(s.last_error.empty());
    CHECK(counter("lanesync_upload_retries_total") == retries_before);

    // "Connection: close" answers are honoured: a new connection per request.
    auto conns = r.cloud->connections();
    r.cloud->set_script([](const seen_request& q) {
        auto rep = ack_all(q);
        rep.keep_alive = false;
        return rep;
    });
    r.publish(4);
    REQUIRE(r.wait_counts(16));
    CHECK(r.cloud->connections() - conns >= 2);
    CHECK(r.status().requests_failed == 0);
}

TEST_CASE("500, 503, 504 and 546 are retried on the backoff timer, within its bounds") {
    std::vector<int> script = {500, 503, 504, 546, 503, 500, 546, 504};
    rig r([&](const seen_request& q) {
        return q.index < script.size() ? status_only(script[q.index]) : ack_all(q);
    });
    r.publish(3);
    auto retries_before = counter("lanesync_upload_retries_total");
    auto http_errors_before = requests_with("http_error");
    r.start();
    REQUIRE(r.wait_counts(3));

    REQUIRE(r.cloud->requests().size() == script.size() + 1);
    auto gaps = r.gaps_ms();
    for (std::size_t i = 0; i < gaps.size(); ++i) {
        // Failure i+1 waits uniform [0, min(max, base * 2^i)]; allow for scheduling slack.
        double cap = std::min(100.0, 10.0 * static_cast<double>(1u << i));
        CHECK_MESSAGE(gaps[i] <= cap + timing_slack_ms(), "gap ", i, " = ", gaps[i], " ms, cap ",
                      cap);
    }
    // Every retry was the same batch (nothing was lost or skipped).
    for (const auto& q : r.cloud->requests())
        CHECK(q.seqs() == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(counter("lanesync_upload_retries_total") - retries_before == script.size());
    CHECK(requests_with("http_error") - http_errors_before == script.size());
    // Attempts were counted on the messages.
    CHECK(r.rec(1).attempts == script.size());

    auto s = r.status();
    CHECK(s.requests_failed == script.size());
    CHECK(s.requests_ok == 1);
    CHECK(s.consecutive_failures == 0); // reset by the success
    CHECK(s.current_backoff_ms == 0);
    CHECK(s.last_error.empty());
    CHECK_FALSE(s.next_attempt_at_ms);
}

TEST_CASE("backoff grows to its cap and stays within it over many failures") {
    std::atomic<bool> accept{false};
    rig r([&](const seen_request& q) { return accept ? ack_all(q) : status_only(503); });
    r.publish(1);
    r.start();
    REQUIRE(run_until(
        r.ioc, [&] { return r.status().consecutive_failures >= 25; }, 15s));
    auto gaps = r.gaps_ms();
    double largest = 0;
    for (auto g : gaps) {
        CHECK(g <= 100.0 + timing_slack_ms());
        largest = std::max(largest, g);
    }
    // Full jitter over [0, 100] ms: 20+ draws all below 20 ms would be a broken backoff.
    CHECK(largest >= 20.0);
    auto s = r.status();
    CHECK(s.consecutive_failures >= 25);
    CHECK(s.current_backoff_ms <= 100);
    CHECK(s.last_error == "cloud server error (HTTP 503)");
    CHECK(s.next_attempt_at_ms);
    accept = true;
    REQUIRE(r.wait_counts(1));
}

TEST_CASE("401 is shown in status and retried; uploads recover when the key is accepted") {
    std::atomic<bool> accept{false};
    rig r([&](const seen_request& q) {
        return accept ? ack_all(q) : status_only(401, "Invalid JWT");
    });
    r.publish(4);
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 3; }));
    auto s = r.status();
    CHECK(s.last_error == "cloud rejected the service key (HTTP 401)");
    CHECK(s.last_http_status == 401);
    CHECK(s.next_attempt_at_ms);
    check_no_key(s);
    CHECK(r.counts().cloud_ack == 0);
    CHECK(r.counts().failed == 0); // an auth error never fails messages

    accept = true;
    REQUIRE(r.wait_counts(4));
    s = r.status();
    CHECK(s.last_error.empty());
    CHECK(s.consecutive_failures == 0);
    CHECK(s.last_http_status == 200);
}

TEST_CASE("403 reads the same as 401") {
    std::atomic<bool> accept{false};
    rig r([&](const seen_request& q) { return accept ? ack_all(q) : status_only(403); });
    r.publish(1);
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 1; }));
    CHECK(r.status().last_error == "cloud rejected the service key (HTTP 403)");
    accept = true;
    REQUIRE(r.wait_counts(1));
}

TEST_CASE("404 (function not deployed) is shown and retried no sooner than the not-found floor") {
    rig r([](const seen_request& q) {
        return q.index < 2 ? status_only(404, "not found") : ack_all(q);
    });
    r.publish(2);
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 1; }));
    auto s = r.status();
    CHECK(s.last_error.find("not found (HTTP 404)") != std::string::npos);
    CHECK(s.last_error.find("sync-pos-message") != std::string::npos);
    CHECK(s.current_backoff_ms >= 300);
    REQUIRE(r.wait_counts(2));
    auto gaps = r.gaps_ms();
    REQUIRE(gaps.size() == 2);
    for (auto g : gaps)
        CHECK(g >= 295.0); // backoff max is 100 ms; the 404 floor (300 ms here) wins
}

TEST_CASE("408 and 429 are retried") {
    rig r([](const seen_request& q) {
        if (q.index == 0)
            return status_only(408);
        if (q.index == 1)
            return status_only(429);
        return ack_all(q);
    });
    r.publish(2);
    r.start();
    REQUIRE(r.wait_counts(2));
    CHECK(r.cloud->requests().size() == 3);
}

TEST_CASE("413 splits the batch; a single message still too large is failed, the rest flow") {
    // The "cloud" takes at most 2 messages per request and never message 4.
    rig r([](const seen_request& q) {
        auto seqs = q.seqs();
        bool has4 = std::find(seqs.begin(), seqs.end(), 4u) != seqs.end();
        return seqs.size() > 2 || has4 ? status_only(413, "Payload Too Large") : ack_all(q);
    });
    r.publish(7);
    auto too_large_before = requests_with("too_large");
    r.start();
    REQUIRE(r.wait_counts(6, 1));
    auto m4 = r.rec(4);
    CHECK(m4.st == state::failed);
    CHECK(m4.last_error == "too large for the cloud");
    for (std::uint64_t seq : {1, 2, 3, 5, 6, 7})
        CHECK(r.rec(seq).st == state::cloud_ack);
    CHECK(requests_with("too_large") > too_large_before);
    // No backoff for a split: it is an answer, not an outage.
    auto s = r.status();
    CHECK(s.consecutive_failures == 0);
    CHECK(s.last_error.empty());
    CHECK(s.messages_rejected == 1);
}

TEST_CASE("a rejected message in the middle of a batch fails alone; later messages are not "
          "blocked") {
    rig r([](const seen_request& q) {
        return answer_each(
            q,
            [](const std::string&, std::uint64_t seq) { return seq == 3 ? "rejected" : "stored"; },
            "unknown sku X9");
    });
    r.publish(5);
    auto failed_before = counter("lanesync_cloud_failed_total");
    r.start();
    REQUIRE(r.wait_counts(4, 1));
    auto m3 = r.rec(3);
    CHECK(m3.st == state::failed);
    CHECK(m3.last_error == "unknown sku X9");
    CHECK(counter("lanesync_cloud_failed_total") - failed_before == 1);
    auto s = r.status();
    CHECK(s.messages_rejected == 1);
    CHECK(s.messages_acked == 4);
    CHECK(s.last_error.empty()); // the request itself succeeded

    r.publish(2);
    REQUIRE(r.wait_counts(6, 1));
    CHECK(r.cloud->requests().back().seqs() == std::vector<std::uint64_t>{6, 7});
}

TEST_CASE("400 for a whole batch is bisected down to the message at fault") {
    rig r([](const seen_request& q) {
        auto seqs = q.seqs();
        bool bad = std::find(seqs.begin(), seqs.end(), 2u) != seqs.end();
        return bad ? status_only(400, "invalid message payload") : ack_all(q);
    });
    r.publish(4);
    r.start();
    REQUIRE(r.wait_counts(3, 1));
    CHECK(r.rec(2).last_error == "cloud rejected the request (HTTP 400): invalid message payload");
    CHECK(r.status().consecutive_failures == 0);
}

TEST_CASE("a 200 that is not JSON, or not the expected shape, is retried; nothing is applied") {
    rig r([](const seen_request& q) {
        reply rep;
        if (q.index == 0)
            rep.body = "<html>gateway</html>";
        else if (q.index == 1)
            rep.body = R"({"results":5})";
        else
            return ack_all(q);
        return rep;
    });
    r.publish(3);
    auto bad_before = requests_with("bad_response");
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 1; }));
    CHECK(r.status().last_error.find("unusable answer from the cloud (HTTP 200)") == 0);
    CHECK(r.counts().cloud_ack == 0);
    REQUIRE(r.wait_counts(3));
    CHECK(r.cloud->requests().size() == 3);
    CHECK(requests_with("bad_response") - bad_before == 2);
    CHECK(r.status().requests_failed == 2);
}

TEST_CASE("a partial answer applies its well-formed results and retries the rest") {
    rig r([](const seen_request& q) {
        if (q.index > 0)
            return ack_all(q);
        // Only messages 1 and 2 answered, plus an id that was never sent.
        auto rep = answer_each(
            q, [](const std::string&, std::uint64_t seq) { return seq <= 2 ? "stored" : ""; });
        auto j = nlohmann::json::parse(rep.body);
        j["results"].push_back(
            {{"messageId", "00000000-0000-7000-8000-000000000000"}, {"status", "stored"}});
        rep.body = j.dump();
        return rep;
    });
    r.publish(4);
    r.start();
    REQUIRE(r.wait_counts(4));
    REQUIRE(r.cloud->requests().size() == 2);
    CHECK(r.cloud->requests()[1].seqs() == std::vector<std::uint64_t>{3, 4});
    CHECK(r.rec(1).attempts == 0); // answered: no failed attempt counted
    CHECK(r.rec(3).attempts == 1);
}

TEST_CASE("a connection closed before or in the middle of the answer is a transient failure") {
    rig r([](const seen_request& q) {
        reply rep = ack_all(q);
        if (q.index == 0)
            rep.act = reply::action::close_mid_body;
        else if (q.index == 1)
            rep.act = reply::action::close; // on a fresh connection: not a stale keep-alive
        return rep;
    });
    r.publish(2);
    auto network_before = requests_with("network");
    r.start();
    REQUIRE(r.wait_counts(2));
    CHECK(r.cloud->requests().size() == 3);
    CHECK(requests_with("network") - network_before == 2);
    auto s = r.status();
    CHECK(s.requests_failed == 2);
    CHECK(s.last_error.empty());
}

TEST_CASE("a request with no answer times out and is retried") {
    rig r([](const seen_request& q) {
        reply rep = ack_all(q);
        if (q.index == 0)
            rep.act = reply::action::hang;
        return rep;
    });
    r.lim.request_timeout = std::chrono::milliseconds(200);
    r.publish(1);
    auto timeouts_before = requests_with("timeout");
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 1; }));
    CHECK(r.status().last_error.find("within 200 ms") != std::string::npos);
    REQUIRE(r.wait_counts(1));
    CHECK(requests_with("timeout") - timeouts_before == 1);
    auto gaps = r.gaps_ms();
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0] >= 195.0);
}

TEST_CASE("connection refused is a transient failure shown in status") {
    // A port nobody listens on: bind one, note it, close it.
    boost::asio::io_context probe;
    std::uint16_t dead_port;
    {
        fake_cloud tmp(probe, nullptr);
        dead_port = tmp.port();
    }
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.supabase_url = "http://127.0.0.1:" + std::to_string(dead_port);
    r.publish(1);
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures >= 2; }));
    auto s = r.status();
    CHECK(s.last_error.find("connecting to http://127.0.0.1:" + std::to_string(dead_port)) == 0);
    CHECK_FALSE(s.last_http_status);
    check_no_key(s);
    CHECK(r.counts().pending == 1);
}

TEST_CASE("the request byte cap spreads a ready batch over several requests") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.lim.max_request_bytes = 900;
    r.publish(6, nlohmann::json{{"note", std::string(200, 'n')}}.dump());
    r.start();
    REQUIRE(r.wait_counts(6));
    CHECK(r.cloud->requests().size() >= 3);
    std::uint64_t next = 1;
    for (const auto& q : r.cloud->requests()) {
        CHECK(q.body.size() <= 900);
        for (auto seq : q.seqs())
            CHECK(seq == next++); // seq order across requests
    }
}

TEST_CASE("pause holds uploads; resume sends at once") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(2);
    auto& up = r.make();
    up.pause(); // posted before start: the loop never sends while paused
    up.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().paused; }));
    r.publish(1);
    up.sync_now();         // sync_now does not override a pause
    run_for(r.ioc, 150ms); // a "nothing happens" check
    CHECK(r.cloud->requests().empty());
    CHECK(r.counts().pending == 3);

    up.resume();
    REQUIRE(r.wait_counts(3, 0, 2s));
    CHECK_FALSE(r.status().paused);
    CHECK(r.cloud->requests().size() == 1);
}

TEST_CASE("sync_now cuts a backoff short") {
    rig r([](const seen_request& q) { return q.index == 0 ? status_only(503) : ack_all(q); });
    r.cfg.backoff_base = std::chrono::milliseconds(20'000);
    r.cfg.backoff_max = std::chrono::milliseconds(20'000);
    r.publish(2);
    auto& up = r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.status().consecutive_failures == 1; }));
    // A new write does not cut the backoff short (notify waits for the retry timer)...
    r.publish(1);
    run_for(r.ioc, 100ms);
    if (r.status().current_backoff_ms > 200) // the jitter may have drawn a tiny delay
        CHECK(r.cloud->requests().size() == 1);
    // ... sync_now does.
    up.sync_now();
    REQUIRE(r.wait_counts(3, 0, 5s));
    CHECK_FALSE(r.status().next_attempt_at_ms);
    CHECK(r.status().consecutive_failures == 0);
}

TEST_CASE("idle poll finds messages written by another process (no notify)") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.cloud_interval = std::chrono::milliseconds(100);
    r.start();
    r.notify_target = nullptr; // this "writer" does not notify, like the CLI in another process
    r.publish(2);
    REQUIRE(r.wait_counts(2, 0, 3s));
}

TEST_CASE("with SUPABASE_URL empty the uploader is disabled and messages wait") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.supabase_url.clear();
    r.publish(2);
    auto& up = r.start();
    up.notify();
    up.sync_now();
    CHECK_FALSE(up.get_status().enabled);
    bool stopped = false;
    up.stop([&] { stopped = true; });
    REQUIRE(run_until(r.ioc, [&] { return stopped; }));
    CHECK(r.cloud->requests().empty());
    CHECK(r.counts().pending == 2);
}

TEST_CASE("stop cancels a request in flight and calls done; the batch stays for later") {
    rig r([](const seen_request& q) {
        reply rep = ack_all(q);
        rep.act = reply::action::hang;
        return rep;
    });
    r.publish(2);
    auto& up = r.start();
    REQUIRE(
        run_until(r.ioc, [&] { return r.cloud->requests().size() == 1 && r.status().in_flight; }));
    bool stopped = false;
    up.stop([&] { stopped = true; });
    REQUIRE(run_until(
        r.ioc, [&] { return stopped; }, 2s));
    CHECK_FALSE(r.status().in_flight);
    CHECK(r.counts().pending == 2);
    CHECK(r.status().consecutive_failures == 0); // a cancel is not a failure
    // Calls after stop are harmless.
    up.notify();
    up.sync_now();
    up.start();
    bool again = false;
    up.stop([&] { again = true; });
    REQUIRE(run_until(r.ioc, [&] { return again; }));
    // Destroying the uploader right away is safe; the io_context keeps running.
    r.notify_target = nullptr;
    r.up.reset();
    run_for(r.ioc, 20ms);
}

TEST_CASE("destroying a running uploader without stop() winds it down safely") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(1);
    r.start();
    REQUIRE(r.wait_counts(1));
    r.notify_target = nullptr;
    r.up.reset();
    run_for(r.ioc, 20ms);
}

TEST_CASE("construction refuses a bad SUPABASE_URL or a missing key, naming the setting") {
    boost::asio::io_context ioc;
    temp_dir dir;
    outbox::options o;
    o.path = dir.file("L1.db");
    o.terminal_id = "L1";
    o.store_id = "store-1";
    auto store = outbox::store::open(o);
    auto cfg = base_config("ftp://x");
    CHECK_THROWS_WITH_AS(cloud::uploader(ioc, *store, cfg), doctest::Contains("SUPABASE_URL"),
                         std::runtime_error);
    cfg = base_config("http://127.0.0.1:1");
    cfg.supabase_service_key.clear();
    CHECK_THROWS_WITH_AS(cloud::uploader(ioc, *store, cfg),
                         doctest::Contains("SUPABASE_SERVICE_KEY"), std::runtime_error);
    store->close();
}

TEST_CASE("an uploader built on the process's async_store uploads the same way") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(3);
    outbox::async_store db(r.ioc.get_executor(), *r.store);
    r.up = std::make_unique<cloud::uploader>(r.ioc, db, r.cfg, r.lim);
    r.notify_target = r.up.get();
    r.up->start();
    REQUIRE(r.wait_counts(3));
    CHECK(r.cloud->requests().size() == 1);
    CHECK(r.status().last_error.empty());
}

TEST_CASE("highest_seq: one GET with the lane's ids and the key; the answer or why not") {
    std::atomic<int> mode{0};
    rig r([&](const seen_request&) {
        if (mode == 1)
            return status_only(503, "database unavailable, retry later");
        if (mode == 2)
            return reply{reply::action::respond, 200,
                         R"({"storeId":"store-1","terminalId":"L2",)"
                         R"("highestSeq":5})"};
        return reply{reply::action::respond, 200,
                     R"({"storeId":"store-1","terminalId":"L1","highestSeq":4200})"};
    });
    auto& up = r.make();
    struct answer {
        bool done = false;
        std::string error;
        std::uint64_t seq = 0;
    };
    auto ask = [&] {
        answer a;
        up.highest_seq([&a](std::string e, std::uint64_t s) { a = {true, std::move(e), s}; });
        REQUIRE(run_until(r.ioc, [&] { return a.done; }));
        return a;
    };
    auto a = ask();
    CHECK(a.error.empty());
    CHECK(a.seq == 4200);
    REQUIRE(r.cloud->requests().size() == 1);
    const auto& q = r.cloud->requests()[0];
    CHECK(q.method == "GET");
    CHECK(q.target == "/functions/v1/sync-pos-message?storeId=store-1&terminalId=L1");
    CHECK(q.headers.at("apikey") == test_key);
    CHECK(q.body.empty());

    mode = 1;
    a = ask();
    CHECK(a.error == "HTTP 503: database unavailable, retry later");
    mode = 2; // an answer about another lane is not an answer
    a = ask();
    CHECK(a.error.find("malformed answer") == 0);
    CHECK(up.get_status().requests_ok == 0); // the query is not an upload
}

// ---- requests in flight (cloud/pacing.hpp) ---------------------------------------------------

TEST_CASE("two rounds in flight: a hung request does not hold back the next batch") {
    // The first request never gets an answer; the second batch goes out beside it on a second
    // connection and is acked while the first is still unanswered.
    rig r([](const seen_request& q) {
        reply rep = ack_all(q);
        if (q.index == 0)
            rep.act = reply::action::hang;
        return rep;
    });
    r.cfg.cloud_batch_size = 5;
    r.lim.request_timeout = std::chrono::milliseconds(2000);
    r.publish(10);
    r.start();
    REQUIRE(run_until(
        r.ioc, [&] { return r.counts().cloud_ack == 5; }, 1500ms));
    CHECK(r.status().requests_in_flight == 1); // the hung one
    CHECK(r.cloud->connections() == 2);
    CHECK(r.rec(6).st == state::cloud_ack);
    CHECK(r.rec(1).st == state::pending);
    // The hung request times out and its batch is sent again.
    REQUIRE(r.wait_counts(10));
    CHECK(r.status().consecutive_failures == 0);
    // Later batches keep to the two connections (keep-alive per round's connection).
    r.publish(20);
    REQUIRE(r.wait_counts(30));
    CHECK(r.cloud->connections() <= 3); // the timed-out one was closed and reopened
}

TEST_CASE("a lower-priority batch is not sent while a higher-priority one is unanswered") {
    std::atomic<bool> release{false};
    rig r([&](const seen_request& q) {
        reply rep = ack_all(q);
        if (q.index == 0 && !release)
            rep.act = reply::action::hang;
        return rep;
    });
    r.cfg.cloud_batch_size = 3;
    r.lim.request_timeout = std::chrono::milliseconds(1500);
    for (auto p : {protocol::priority::high, protocol::priority::normal}) {
        for (int i = 0; i < 3; ++i) {
            protocol::publish_request req;
            req.topic = "transaction";
            req.data = R"({"sku":"A1","qty":1})";
            req.prio = p;
            auto out = outbox::publish_sync(*r.store, req);
            REQUIRE(out.k == outbox::publish_outcome::created);
            r.published.push_back(out.rec);
        }
    }
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.cloud->requests().size() == 1; }));
    // The high batch hangs: the normal one waits for its answer (here: its timeout).
    run_for(r.ioc, 300ms);
    CHECK(r.cloud->requests().size() == 1);
    release = true;
    REQUIRE(r.wait_counts(6));
    const auto& seen = r.cloud->requests();
    REQUIRE(seen.size() >= 3);
    // After the timeout the high batch went again before the normal one.
    CHECK(seen[1].seqs().front() == 1);
    CHECK(seen.back().seqs().front() == 4);
}

TEST_CASE("a success beside a failure does not end that failure's backoff") {
    // The batch of seq 1 gets a 404 (retried no sooner than the not-found floor); the batch of
    // seq 3, sent beside it, succeeds. That success must not cut the 404's wait short.
    std::atomic<int> not_found{0};
    rig r([&](const seen_request& q) {
        if (q.seqs().front() == 1 && not_found++ == 0)
            return status_only(404, "not deployed");
        return ack_all(q);
    });
    r.cfg.cloud_batch_size = 2;
    r.publish(4);
    r.start();
    REQUIRE(r.wait_counts(4));
    const auto& seen = r.cloud->requests();
    REQUIRE(seen.size() == 3);
    std::vector<std::chrono::steady_clock::time_point> firsts;
    for (const auto& q : seen)
        if (q.seqs().front() == 1)
            firsts.push_back(q.at);
    REQUIRE(firsts.size() == 2);
    CHECK(std::chrono::duration<double, std::milli>(firsts[1] - firsts[0]).count() >= 295.0);
    CHECK(r.status().consecutive_failures == 0);
}

TEST_CASE("answers that cannot be marked (the outbox refuses the write) back off, never loop") {
    // The disk is full for the marks: every 2xx is followed by a failed cloud_ack write. The
    // uploader must wait its backoff before it sends the batch again (the cloud then answers
    // duplicate), never re-upload at once, and mark everything once the write succeeds.
    rig r([&](const seen_request& q) { return ack_all(q); });
    r.cfg.backoff_base = std::chrono::milliseconds(100);
    r.cfg.backoff_max = std::chrono::milliseconds(100);
    r.publish(3);
    outbox::detail::test_hooks::exec_on_writer(
        *r.store, "CREATE TEMP TRIGGER disk_full BEFORE UPDATE OF state ON messages "
                  "WHEN NEW.state = 2 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    r.start();
    REQUIRE(run_until(
        r.ioc, [&] { return r.status().consecutive_failures >= 20; }, 20s));
    auto s = r.status();
    CHECK(s.last_error.find("outbox write failed") != std::string::npos);
    CHECK(s.last_error.find("full") != std::string::npos);
    CHECK(s.next_attempt_at_ms);
    CHECK(r.counts().cloud_ack == 0);
    // Every request was followed by a failure and its backoff (at most one more in flight).
    const auto n = r.cloud->requests().size();
    CHECK(n <= s.consecutive_failures + 1);
    auto gaps = r.gaps_ms();
    double sum = 0;
    for (auto g : gaps)
        sum += g;
    // Full jitter over [0, 100] ms averages 50 ms; a loop without backoff averages ~1 ms.
    CHECK(sum / static_cast<double>(gaps.size()) >= 20.0);
    for (const auto& q : r.cloud->requests())
        CHECK(q.seqs() == std::vector<std::uint64_t>{1, 2, 3});
    // Space is back: the next attempt marks the batch.
    outbox::detail::test_hooks::exec_on_writer(*r.store, "DROP TRIGGER disk_full");
    REQUIRE(r.wait_counts(3));
}

// ---- the lane summary and heartbeats (docs/cloud.md "Lane health") --------------------------

TEST_CASE("every upload request carries the lane's summary") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(3);
    r.start();
    REQUIRE(r.wait_counts(3));
    REQUIRE(r.cloud->requests().size() == 1);
    auto body = nlohmann::json::parse(r.cloud->requests().at(0).body);
    REQUIRE(body.contains("lane"));
    const auto& lane = body["lane"];
    CHECK(lane["storeId"] == "store-1");
    CHECK(lane["terminalId"] == "L1");
    CHECK(lane["agentVersion"] == LANESYNC_VERSION);
    CHECK(lane["pending"] == 3); // read just before the request: nothing acked yet
    CHECK(lane["cloudAck"] == 0);
    CHECK(lane["lastSeq"] == 3);
    CHECK(lane["oldestPendingAgeMs"].get<std::int64_t>() >= 0);
    CHECK(lane["oldestPeerAckAgeMs"].is_null());
    CHECK(lane["retryDepth"] == 0);
    CHECK(lane["peersConfigured"] == 0);
    CHECK(lane["at"].get<std::int64_t>() > 0);
}

TEST_CASE("an idle lane sends its summary alone every CLOUD_HEARTBEAT_MS") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.cfg.cloud_heartbeat = 300ms;
    r.cfg.cloud_interval = 50ms;
    const auto ok_before = counter("lanesync_cloud_heartbeats_total", "outcome=\"ok\"");
    auto& up = r.start();
    up.set_peers([] { return cloud::peer_count{1, 2}; });
    auto beats = [&] {
        return counter("lanesync_cloud_heartbeats_total", "outcome=\"ok\"") - ok_before;
    };
    REQUIRE(run_until(
        r.ioc, [&] { return beats() >= 2; }, 5s)); // answered, not only sent
    auto reqs = r.cloud->requests();
    for (const auto& q : reqs) {
        auto body = nlohmann::json::parse(q.body);
        CHECK(body["messages"].empty());
        CHECK(body["lane"]["pending"] == 0);
    }
    CHECK(nlohmann::json::parse(reqs[1].body)["lane"]["peersUp"] == 1);
    CHECK(nlohmann::json::parse(reqs[1].body)["lane"]["peersConfigured"] == 2);
    CHECK(reqs[1].at - reqs[0].at >= 250ms); // not one per idle poll
    // Work goes out as usual, and a request just sent puts the next heartbeat off.
    r.publish(1);
    up.notify();
    REQUIRE(r.wait_counts(1));
    CHECK(nlohmann::json::parse(r.cloud->requests().back().body)["messages"].size() == 1);
}

TEST_CASE("a failed heartbeat is counted and changes nothing") {
    rig r([](const seen_request&) { return status_only(503); });
    r.cfg.cloud_heartbeat = 200ms;
    r.cfg.cloud_interval = 50ms;
    const auto failed_before = counter("lanesync_cloud_heartbeats_total", "outcome=\"failed\"");
    r.start();
    auto failed = [&] {
        return counter("lanesync_cloud_heartbeats_total", "outcome=\"failed\"") - failed_before;
    };
    REQUIRE(run_until(
        r.ioc, [&] { return failed() >= 2; }, 5s));
    CHECK(r.status().consecutive_failures == 0); // an idle lane's outage shows at its next upload
    CHECK_FALSE(r.status().next_attempt_at_ms);
}

TEST_CASE("a cloud that refuses the lane object gets the batch again without it") {
    rig r([](const seen_request& q) {
        if (q.body.find("\"lane\"") != std::string::npos)
            return status_only(400, "lane has unknown field(s) \"retryDepth\"");
        return ack_all(q);
    });
    r.cfg.cloud_heartbeat = 100ms;
    r.cfg.cloud_interval = 50ms;
    r.publish(3);
    r.start();
    REQUIRE(r.wait_counts(3)); // stored, none failed
    auto reqs = r.cloud->requests();
    REQUIRE(reqs.size() == 2);
    CHECK(nlohmann::json::parse(reqs[0].body).contains("lane"));
    CHECK_FALSE(nlohmann::json::parse(reqs[1].body).contains("lane"));
    CHECK(reqs[1].seqs() == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(r.status().consecutive_failures == 0);
    // No heartbeats either from then on.
    run_for(r.ioc, 300ms); // a "nothing happens" window, three heartbeat periods long
    CHECK(r.cloud->requests().size() == 2);
}

TEST_CASE("reconfigure (a live reload): the next requests carry the new key and batch size") {
    rig r([](const seen_request& q) { return ack_all(q); });
    r.publish(3);
    r.start();
    REQUIRE(r.wait_counts(3));
    const auto before = r.cloud->requests().size();
    const std::string rotated = "sk_test_ROTATED_NEVER_SHOW_ME_81d0";
    // As the agent does on a reload: the running configuration changed, then handed over.
    r.cfg.supabase_service_key = rotated;
    r.cfg.cloud_batch_size = 2;
    r.up->reconfigure(r.cfg);
    r.publish(5);
    REQUIRE(r.wait_counts(8));
    const auto& reqs = r.cloud->requests();
    REQUIRE(reqs.size() >= before + 3); // 5 messages at most 2 per request
    std::size_t sent = 0;
    for (std::size_t i = before; i < reqs.size(); ++i) {
        CHECK(reqs[i].headers.at("apikey") == rotated);
        auto n = nlohmann::json::parse(reqs[i].body)["messages"].size();
        CHECK(n <= 2);
        sent += n;
    }
    CHECK(sent == 5);
    check_no_key(r.status());
    CHECK(r.status().last_error.find("ROTATED") == std::string::npos);
}
