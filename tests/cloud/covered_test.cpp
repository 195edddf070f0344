// Covered uploads (replica takeover, issue 9 item 4): the uploader fills a round's batch with
// replicas of the origins set_cover() names, sent with the origin's terminalId and
// "uploadedBy": this lane, and records the cloud's answers on those replicas. Real outbox on a
// temp file, the scripted fake cloud (fake_cloud.hpp); waits are on conditions with deadlines.

#include "base/metrics.hpp"
#include "cloud/uploader.hpp"
#include "fake_cloud.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <future>
#include <mutex>

using namespace lanesync;
using namespace lanesync::cloud_testing;
using lanesync::outbox::state;
using P = protocol::priority;

namespace {

std::uint64_t covered_metric(const std::string& origin) {
    return metrics::global()
        .get_counter("lanesync_cloud_covered_messages_total", "", "origin=\"" + origin + "\"")
        .value();
}

/// Lane L1 holding its own messages and replicas of L3 (and L4), a fake cloud, an uploader.
struct lane {
    temp_dir dir;
    boost::asio::io_context ioc;
    std::unique_ptr<outbox::store> store;
    std::unique_ptr<fake_cloud> cloud;
    conf::config cfg;
    cloud::limits lim;
    std::unique_ptr<cloud::uploader> up;
    std::vector<outbox::record> own;
    std::map<std::string, std::vector<protocol::message>> replicas; ///< by origin, seq order

    explicit lane(fake_cloud::script s) {
        outbox::options o;
        o.path = dir.file("L1.db");
        o.terminal_id = "L1";
        o.store_id = "store-1";
        store = outbox::store::open(o);
        cloud = std::make_unique<fake_cloud>(ioc, std::move(s));
        cfg.terminal_id = "L1";
        cfg.store_id = "store-1";
        cfg.supabase_url = cloud->url();
        cfg.supabase_service_key = "sk_test_covered_0123456789";
        cfg.backoff_base = std::chrono::milliseconds(10);
        cfg.backoff_max = std::chrono::milliseconds(50);
        cfg.cloud_interval = std::chrono::milliseconds(60'000);
        cfg.cloud_heartbeat = std::chrono::milliseconds(0);
    }
    ~lane() {
        if (up) {
            bool stopped = false;
            up->stop([&] { stopped = true; });
            CHECK(run_until(ioc, [&] { return stopped; }));
            up.reset();
        }
        cloud.reset();
        store->close();
    }

    void publish(int n) {
        for (int i = 0; i < n; ++i) {
            protocol::publish_request r;
            r.topic = "transaction";
            r.data = R"({"total":1})";
            auto out = outbox::publish_sync(*store, r);
            REQUIRE(out.k == outbox::publish_outcome::created);
            own.push_back(out.rec);
        }
    }

    /// Stores the next replicas of `origin` (as a peer's batch would), with these priorities.
    void hold(const std::string& origin, const std::vector<P>& prios,
              const std::string& id_prefix = {}) {
        auto& held = replicas[origin];
        std::vector<protocol::message> msgs;
        for (auto prio : prios) {
            protocol::message m;
            auto n = held.size() + msgs.size() + 1;
            char tail[13];
            std::snprintf(tail, sizeof tail, "%012zu", n);
            m.id = id_prefix.empty() ? "0190f3a2-0000-7000-8" +
                                           std::string(origin == "L3" ? "3" : "4") + "00-" + tail
                                     : id_prefix;
            m.origin = origin;
            m.seq = n;
            m.topic = "transaction";
            m.prio = prio;
            m.data = R"({"total":2})";
            m.created_at_ms = 1'795'000'000'000 + static_cast<std::int64_t>(n);
            msgs.push_back(m);
        }
        std::promise<outbox::replicas_outcome> p;
        store->store_replicas(msgs, {}, false,
                              [&](outbox::replicas_outcome o) { p.set_value(std::move(o)); });
        auto out = p.get_future().get();
        REQUIRE_MESSAGE(out.ok, out.error);
        REQUIRE(out.inserted == msgs.size());
        held.insert(held.end(), msgs.begin(), msgs.end());
    }

    cloud::uploader& start(std::function<std::vector<std::string>()> cover) {
        up = std::make_unique<cloud::uploader>(ioc, *store, cfg, lim);
        if (cover)
            up->set_cover(std::move(cover));
        up->start();
        return *up;
    }

    state replica_state(const std::string& origin, std::uint64_t seq) {
        auto r = store->get(replicas.at(origin).at(seq - 1).id);
        REQUIRE(r);
        return r->st;
    }
    bool wait(const std::function<bool()>& pred) { return run_until(ioc, pred, 10s); }

    /// The messages of every request so far, in order.
    std::vector<nlohmann::json> sent() const {
        std::vector<nlohmann::json> out;
        for (const auto& q : cloud->requests()) {
            auto body = nlohmann::json::parse(q.body);
            for (const auto& m : body["messages"])
                out.push_back(m);
        }
        return out;
    }
};

std::string who(const nlohmann::json& m) {
    std::string s = m["terminalId"].get<std::string>() + ":" + std::to_string(m["seq"].get<int>());
    if (m.contains("uploadedBy"))
        s += "@" + m["uploadedBy"].get<std::string>();
    return s;
}

/// "L1:1 L1:2 L3:2@L1": readable in a failed CHECK.
std::string who_all(const std::vector<nlohmann::json>& ms) {
    std::string out;
    for (const auto& m : ms)
        out += (out.empty() ? "" : " ") + who(m);
    return out;
}

} // namespace

TEST_CASE("covered replicas go up with the own messages, by priority, with uploadedBy") {
    // Declared before the lane: cover() may be asked until the lane's destructor has stopped
    // the uploader.
    std::atomic<int> calls{0};
    lane l([](const seen_request& q) { return ack_all(q); });
    l.publish(2);
    l.hold("L3", {P::normal, P::critical, P::normal});
    auto before = covered_metric("L3");
    l.start([&] {
        ++calls;
        return std::vector<std::string>{"L3"};
    });
    REQUIRE(l.wait([&] {
        return l.up->get_status().messages_covered == 3 &&
               l.replica_state("L3", 3) == state::cloud_ack;
    }));
    REQUIRE(l.cloud->requests().size() == 1);
    // The critical replica first, then the normal ones: the own ones first within the level.
    CHECK(who_all(l.sent()) == "L3:2@L1 L1:1 L1:2 L3:1@L1 L3:3@L1");
    for (std::uint64_t seq = 1; seq <= 3; ++seq)
        CHECK(l.replica_state("L3", seq) == state::cloud_ack);
    CHECK(l.store->get_counts().cloud_ack == 2); // own counts are own messages only
    for (const auto& o : l.store->origin_summaries())
        if (o.origin == "L3")
            CHECK(o.cloud_through == 3);
    CHECK(covered_metric("L3") - before == 3);
    CHECK(calls >= 1);
    auto m = l.sent()[0];
    CHECK(m["storeId"] == "store-1");
    CHECK(m["priority"] == "critical");
    CHECK(m["messageId"] == l.replicas["L3"][1].id);

    // Once in the cloud they are not sent again; new replicas are.
    l.hold("L3", {P::low});
    l.up->notify();
    REQUIRE(l.wait([&] { return l.replica_state("L3", 4) == state::cloud_ack; }));
    CHECK(l.cloud->requests().size() == 2);
    CHECK(who(l.sent().back()) == "L3:4@L1");
    CHECK(l.sent().size() == 6);
}

TEST_CASE("nothing is covered when cover() is empty, names only this lane, or is never set") {
    for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(variant);
        lane l([](const seen_request& q) { return ack_all(q); });
        l.publish(2);
        l.hold("L3", {P::normal, P::high});
        std::function<std::vector<std::string>()> cover;
        if (variant == 0)
            cover = [] { return std::vector<std::string>{}; };
        if (variant == 1)
            cover = [] { return std::vector<std::string>{"L1"}; };
        l.start(cover);
        REQUIRE(l.wait([&] { return l.store->get_counts().cloud_ack == 2; }));
        // An idle poll later: still nothing of L3.
        l.up->sync_now();
        REQUIRE(l.wait([&] { return l.cloud->requests().size() >= 1; }));
        run_for(l.ioc, 100ms);
        CHECK(who_all(l.sent()) == "L1:1 L1:2");
        CHECK(l.replica_state("L3", 1) == state::pending);
        CHECK(l.replica_state("L3", 2) == state::pending);
        CHECK(l.up->get_status().messages_covered == 0);
    }
}

TEST_CASE("a full batch: critical replicas before normal own messages, the rest next round") {
    lane l([](const seen_request& q) { return ack_all(q); });
    l.cfg.cloud_batch_size = 3;
    l.publish(4);
    l.hold("L3", {P::low, P::critical});
    l.hold("L4", {P::critical});
    l.start([] { return std::vector<std::string>{"L4", "L3"}; });
    REQUIRE(l.wait([&] { return l.up->get_status().messages_covered == 3; }));
    REQUIRE(l.cloud->requests().size() == 3);
    std::vector<std::string> rounds;
    for (const auto& q : l.cloud->requests()) {
        auto body = nlohmann::json::parse(q.body);
        std::vector<nlohmann::json> ms(body["messages"].begin(), body["messages"].end());
        rounds.push_back(who_all(ms));
    }
    // Priority first across own and covered (critical replicas by origin, then seq), then the
    // own normal messages, then the low replica.
    CHECK(rounds[0] == "L3:2@L1 L4:1@L1 L1:1");
    CHECK(rounds[1] == "L1:2 L1:3 L1:4");
    CHECK(rounds[2] == "L3:1@L1");
}

TEST_CASE(
    "answers for covered replicas: duplicate is cloud_ack, rejected is failed with the reason") {
    lane l([](const seen_request& q) {
        return answer_each(
            q,
            [](const std::string&, std::uint64_t seq) {
                return seq == 2 ? std::string("rejected") : std::string("duplicate");
            },
            "seq conflict: seq 2 of store-1/L3 is already used");
    });
    l.hold("L3", {P::normal, P::normal, P::normal});
    auto before = covered_metric("L3");
    l.start([] { return std::vector<std::string>{"L3"}; });
    REQUIRE(l.wait([&] { return l.replica_state("L3", 2) == state::failed; }));
    REQUIRE(l.wait([&] { return l.up->get_status().messages_covered == 2; }));
    CHECK(l.replica_state("L3", 1) == state::cloud_ack);
    CHECK(l.replica_state("L3", 3) == state::cloud_ack);
    auto failed = l.store->get(l.replicas["L3"][1].id);
    CHECK(failed->last_error == "seq conflict: seq 2 of store-1/L3 is already used");
    CHECK(covered_metric("L3") - before == 2);
    CHECK(l.store->get_counts().failed == 0); // own counts untouched
}

TEST_CASE("an id held as own and as a replica goes up once per request") {
    lane l([](const seen_request& q) { return ack_all(q); });
    l.publish(1);
    // A POS retry: L3 accepted the same id as its own (its seq 1); L1 holds L3's copy too.
    l.hold("L3", {P::normal}, l.own[0].msg.id);
    l.start([] { return std::vector<std::string>{"L3"}; });
    REQUIRE(l.wait([&] { return l.up->get_status().messages_covered == 1; }));
    REQUIRE(l.cloud->requests().size() == 2);
    for (const auto& q : l.cloud->requests())
        CHECK(q.ids().size() == 1);
    CHECK(who_all(l.sent()) == "L1:1 L3:1@L1");
    CHECK(l.store->get_counts().cloud_ack == 1);
}

TEST_CASE("cover() is asked every round: a lane taken over later is covered from then on") {
    std::mutex m; // before the lane: cover() may be asked until the uploader has stopped
    std::vector<std::string> now; // what the lane's takeover rule says at the moment
    lane l([](const seen_request& q) { return ack_all(q); });
    l.publish(1);
    l.hold("L3", {P::normal});
    l.hold("L4", {P::normal});
    l.start([&] {
        std::lock_guard lock(m);
        return now;
    });
    REQUIRE(l.wait([&] { return l.store->get_counts().cloud_ack == 1; }));
    CHECK(who_all(l.sent()) == "L1:1");
    {
        std::lock_guard lock(m);
        now = {"L4"};
    }
    l.up->notify(); // the lane may tell the uploader at once when the set changes
    REQUIRE(l.wait([&] { return l.replica_state("L4", 1) == state::cloud_ack; }));
    CHECK(who_all(l.sent()) == "L1:1 L4:1@L1");
    CHECK(l.replica_state("L3", 1) == state::pending);
}

TEST_CASE("a changed cover set is seen between rounds without notify() or the idle poll") {
    std::mutex m; // before the lane: cover() is asked every 50 ms until the uploader stopped
    std::vector<std::string> now;
    std::atomic<int> asked{0};
    lane l([](const seen_request& q) { return ack_all(q); });
    l.lim.cover_check = 50ms; // the idle poll stays at 60 s
    l.hold("L3", {P::normal, P::normal});
    l.start([&] {
        ++asked;
        std::lock_guard lock(m);
        return now;
    });
    REQUIRE(l.wait([&] { return asked >= 3; })); // asked again and again while idle
    CHECK(l.cloud->requests().empty());
    auto t0 = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(m);
        now = {"L3"};
    }
    REQUIRE(l.wait([&] { return l.replica_state("L3", 2) == state::cloud_ack; }));
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    REQUIRE(l.cloud->requests().size() == 1);
    CHECK(who_all(l.sent()) == "L3:1@L1 L3:2@L1");
}

TEST_CASE("with peers configured: own peer_ack messages and covered replicas in one batch") {
    lane l([](const seen_request& q) { return ack_all(q); });
    l.cfg.peers.push_back(conf::peer_url{"ws://127.0.0.1:1/v1/peer", false, "127.0.0.1", 1});
    l.publish(2);
    l.hold("L3", {P::high});
    std::promise<outbox::peer_ack_outcome> p;
    l.store->peer_acked("L2", 1, 1, [&](outbox::peer_ack_outcome o) { p.set_value(o); });
    REQUIRE(p.get_future().get().ok);
    l.start([] { return std::vector<std::string>{"L3"}; });
    REQUIRE(l.wait([&] { return l.replica_state("L3", 1) == state::cloud_ack; }));
    // The high replica before the normal own message; L1:2 is still pending: not uploaded.
    CHECK(who_all(l.sent()) == "L3:1@L1 L1:1");
    auto sent = l.sent();
    CHECK(sent[1]["peerAckedAt"].is_string());
    CHECK(l.store->get_counts().pending == 1);
}
