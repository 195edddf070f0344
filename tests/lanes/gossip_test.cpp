// Peer replication in one process: real gossip objects over loopback on port 0, real outboxes
// on temp files, the io_context driven by the test (STYLE habit 15).
#include "base/metrics.hpp"
#include "lanes/gossip.hpp"
#include "lanes/hub.hpp"
#include "outbox/outbox.hpp"
#include "protocol/publish.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

namespace fs = std::filesystem;
using namespace lanesync;
using namespace std::chrono_literals;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               ("lanesync-lanes-" + std::to_string(::getpid()) + "-" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

/// Polls `pred` until true or the deadline; returns the last result.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds within = 15s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred())
            return true;
        std::this_thread::sleep_for(5ms); // polling interval of a deadline wait, not a sync
    }
    return pred();
}

conf::config lane_config(const std::string& id, const fs::path& dir, const std::string& secret) {
    conf::config c;
    c.terminal_id = id;
    c.store_id = "store-t";
    c.terminal_port = 0;
    c.terminal_bind = "127.0.0.1";
    c.peer_secret = secret;
    c.outbox_path = (dir / (id + ".db")).string();
    return c;
}

/// One lane: its config, store and gossip on a shared io_context.
struct lane {
    conf::config cfg;
    std::unique_ptr<outbox::store> store;
    std::unique_ptr<lanes::gossip> gossip;

    lane(boost::asio::io_context& ioc, conf::config c) : cfg(std::move(c)) {
        store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        gossip = std::make_unique<lanes::gossip>(ioc, *store, cfg);
        store->set_commit_listener([g = gossip.get()](const outbox::commit_info& ci) {
            if (ci.new_own || ci.new_replicas)
                g->notify();
        });
    }

    void peer_with(const lane& other) {
        auto u = conf::parse_peer_url("ws://127.0.0.1:" + std::to_string(other.gossip->port()) +
                                      "/v1/peer");
        REQUIRE(u);
        cfg.peers.push_back(*u);
    }

    void publish(int n) {
        for (int i = 0; i < n; ++i) {
            auto req = protocol::make_publish_request("transaction",
                                                      R"({"total":)" + std::to_string(i) + "}",
                                                      std::nullopt, std::nullopt);
            REQUIRE(req.ok());
            auto out = outbox::publish_sync(*store, req.value());
            REQUIRE(out.k == outbox::publish_outcome::created);
        }
    }

    std::uint64_t holds(const std::string& origin) {
        auto h = store->hwm();
        auto it = h.find(origin);
        return it == h.end() ? 0 : it->second;
    }
};

/// Runs an io_context on a background thread for the test's duration.
struct runner {
    boost::asio::io_context ioc;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        ioc.get_executor()};
    std::thread thread;
    void start() {
        thread = std::thread([this] { ioc.run(); });
    }
    void stop() {
        work.reset();
        ioc.stop();
        if (thread.joinable())
            thread.join();
    }
    ~runner() { stop(); }
};

/// Declared after the lanes of a test: stops the io thread before they are destroyed.
struct stop_first {
    runner& r;
    ~stop_first() { r.stop(); }
};

double counter(const std::string& name) {
    auto text = metrics::global().render();
    auto pos = text.find("\n" + name + " ");
    if (pos == std::string::npos)
        return 0;
    return std::stod(text.substr(pos + name.size() + 2));
}

} // namespace

TEST_CASE("two lanes: messages replicate and reach peer_ack") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    l1.gossip->start();
    l2.peer_with(l1);
    l2.gossip->start();
    stop_first guard{r};
    r.start();

    l1.publish(300);
    CHECK(eventually([&] { return l2.holds("L1") == 300; }));
    CHECK(eventually([&] { return l1.store->get_counts().peer_ack == 300; }));
    // The other way round, over the same (inbound-to-L1) connection.
    l2.publish(40);
    CHECK(eventually([&] { return l1.holds("L2") == 40; }));
    CHECK(eventually([&] { return l2.store->get_counts().peer_ack == 40; }));

    auto st = l2.gossip->status();
    REQUIRE(st.size() == 1);
    CHECK(st[0].terminal_id == "L1");
    CHECK(st[0].connected);
    CHECK(st[0].acked_through_seq == 40);

    std::atomic<bool> stopped1{false}, stopped2{false}; // set on the io thread
    l2.gossip->stop([&] { stopped2 = true; });
    l1.gossip->stop([&] { stopped1 = true; });
    CHECK(eventually([&] { return stopped1 && stopped2; }));
}

TEST_CASE("a relay: L3 peered only with L2 gets L1's messages") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    lane l3(r.ioc, lane_config("L3", dir.path, "a-shared-secret-0123"));
    l2.gossip->start();
    l1.peer_with(l2);
    l3.peer_with(l2);
    l1.gossip->start();
    l3.gossip->start();
    stop_first guard{r};
    r.start();
    l1.publish(120);
    CHECK(eventually([&] { return l3.holds("L1") == 120; }));
    l3.publish(10);
    CHECK(eventually([&] { return l1.holds("L3") == 10; }));
}

TEST_CASE("a peer with the wrong secret is refused and nothing is stored") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    lane bad(r.ioc, lane_config("L9", dir.path, "another-secret-456789"));
    l1.gossip->start();
    bad.peer_with(l1);
    auto before = counter("lanesync_peer_auth_failures_total");
    bad.gossip->start();
    stop_first guard{r};
    r.start();
    bad.publish(5);
    CHECK(eventually([&] { return counter("lanesync_peer_auth_failures_total") >= before + 2; }));
    CHECK(l1.holds("L9") == 0);
    CHECK(bad.store->get_counts().pending == 5);
    auto st = bad.gossip->status();
    REQUIRE(st.size() == 1);
    CHECK_FALSE(st[0].connected);
    CHECK(eventually([&] {
        auto s = bad.gossip->status();
        return s[0].last_error.find("authentication failed") != std::string::npos;
    }));
}

TEST_CASE("a peer of another store is refused") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    auto other = lane_config("L2", dir.path, "a-shared-secret-0123");
    other.store_id = "store-other";
    lane l2(r.ioc, other);
    l1.gossip->start();
    l2.peer_with(l1);
    l2.gossip->start();
    stop_first guard{r};
    r.start();
    l2.publish(3);
    CHECK(eventually([&] {
        auto s = l2.gossip->status();
        return s[0].last_error.find("store mismatch") != std::string::npos;
    }));
    CHECK(l1.holds("L2") == 0);
}

TEST_CASE("listening on a port in use fails loudly") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    l1.gossip->start();
    auto c = lane_config("L2", dir.path, "a-shared-secret-0123");
    c.terminal_port = l1.gossip->port();
    lane l2(r.ioc, c);
    CHECK_THROWS_AS(l2.gossip->start(), std::system_error);
}

namespace {
struct fake_session : lanes::session_handle {
    int wakes = 0;
    bool sender = false;
    std::uint16_t closed = 0;
    void wake() override { ++wakes; }
    void set_sender(bool on) override { sender = on; }
    void close(std::uint16_t code, std::string) override { closed = code; }
    void send_news() override {}
    int haves = 0;
    void send_catalog_have() override { ++haves; }
};
} // namespace

TEST_CASE("hub: duplicate ids refused, one sender per peer, successor on leave") {
    temp_dir dir;
    auto cfg = lane_config("L1", dir.path, "a-shared-secret-0123");
    auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
    boost::asio::io_context ioc;
    lanes::hub h(ioc.get_executor(), *store, cfg);
    auto in1 = std::make_shared<fake_session>();
    auto in2 = std::make_shared<fake_session>();
    auto out1 = std::make_shared<fake_session>();
    auto self = std::make_shared<fake_session>();

    CHECK(h.join(in1, "L2", false, "").empty());
    CHECK(in1->sender);
    CHECK(h.join(in2, "L2", false, "").find("duplicate terminal id") != std::string::npos);
    CHECK(h.join(self, "L1", false, "").find("own id") != std::string::npos);
    CHECK(h.join(out1, "L2", true, "ws://x:1/v1/peer").empty());
    CHECK_FALSE(out1->sender); // the inbound session already sends to L2
    h.wake_all();
    CHECK(in1->wakes == 1);
    CHECK(out1->wakes == 0);
    h.leave(in1.get(), "gone");
    CHECK(out1->sender);
    CHECK(h.close_all(1001, "bye") == 1);
    CHECK(out1->closed == 1001);
}

namespace {
/// A test CA and a server certificate for 127.0.0.1 / localhost, made with the openssl CLI.
struct test_pki {
    fs::path dir;
    explicit test_pki(const fs::path& d, const std::string& name) : dir(d / name) {
        fs::create_directories(dir);
        std::string cmd =
            "cd '" + dir.string() +
            "' && "
            "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
            "-subj '/CN=lanesync test CA " +
            name +
            "' && "
            "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "
            "'/CN=127.0.0.1' && "
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
            "-out server.pem -days 2 -extfile ext.cnf";
        std::string quiet = "(" + cmd + ") >/dev/null 2>&1";
        REQUIRE(std::system(quiet.c_str()) == 0);
    }
    std::string ca() const { return (dir / "ca.pem").string(); }
    std::string cert() const { return (dir / "server.pem").string(); }
    std::string key() const { return (dir / "server.key").string(); }
};

std::string last_error(lane& l) {
    auto s = l.gossip->status();
    return s.empty() ? std::string() : s[0].last_error;
}
} // namespace

/// L1 serves wss:// with `server`'s certificate; L2 dials it trusting `trusted`'s CA.
struct tls_pair {
    runner r;
    lane l1;
    lane l2;
    tls_pair(const fs::path& dir, const test_pki& server, const test_pki& trusted)
        : l1(r.ioc, tls_listener(dir, server)), l2(r.ioc, trusting(dir, trusted)) {
        l1.gossip->start();
        auto u = conf::parse_peer_url("wss://127.0.0.1:" + std::to_string(l1.gossip->port()) +
                                      "/v1/peer");
        REQUIRE(u);
        REQUIRE(u->tls);
        l2.cfg.peers.push_back(*u);
        l2.gossip->start();
        r.start();
    }
    ~tls_pair() { r.stop(); }
    static conf::config tls_listener(const fs::path& dir, const test_pki& pki) {
        auto c = lane_config("L1", dir, "a-shared-secret-0123");
        c.peer_tls_cert_file = pki.cert();
        c.peer_tls_key_file = pki.key();
        return c;
    }
    static conf::config trusting(const fs::path& dir, const test_pki& pki) {
        auto c = lane_config("L2", dir, "a-shared-secret-0123");
        c.peer_ca_file = pki.ca();
        return c;
    }
};

TEST_CASE("wss: lanes replicate over TLS with the store's CA") {
    temp_dir dir;
    test_pki pki(dir.path, "good");
    tls_pair p(dir.path, pki, pki);
    p.l2.publish(50);
    p.l1.publish(20);
    CHECK(eventually([&] { return p.l1.holds("L2") == 50 && p.l2.holds("L1") == 20; }));
    CHECK(eventually([&] { return p.l2.store->get_counts().peer_ack == 50; }));
}

TEST_CASE("wss: a certificate from another CA fails closed with a clear error") {
    temp_dir dir;
    test_pki pki(dir.path, "good");
    test_pki other(dir.path, "other");
    tls_pair p(dir.path, pki, other);
    p.l2.publish(3);
    CHECK(eventually(
        [&] { return last_error(p.l2).find("certificate verify failed") != std::string::npos; }));
    CHECK(p.l1.holds("L2") == 0);
    CHECK(p.l2.store->get_counts().pending == 3);
}

TEST_CASE("wss: a plain ws:// client cannot talk to a TLS listener") {
    temp_dir dir;
    test_pki pki(dir.path, "good");
    runner r;
    lane l1(r.ioc, tls_pair::tls_listener(dir.path, pki));
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    l1.gossip->start();
    l2.peer_with(l1); // ws://
    l2.gossip->start();
    stop_first guard{r};
    r.start();
    l2.publish(2);
    CHECK(eventually([&] { return !last_error(l2).empty(); }));
    CHECK(l1.holds("L2") == 0);
}

TEST_CASE("hub: a permanent link ending shows in status and /metrics until a session works") {
    temp_dir dir;
    auto cfg = lane_config("L1", dir.path, "a-shared-secret-0123");
    auto u = conf::parse_peer_url("ws://127.0.0.1:1/v1/peer");
    REQUIRE(u);
    cfg.peers.push_back(*u);
    auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
    boost::asio::io_context ioc;
    lanes::hub h(ioc.get_executor(), *store, cfg);
    const std::string series = "lanesync_peer_link_permanent_failure{peer=\"" + u->text + "\"} ";
    CHECK(metrics::global().render().find(series + "0") != std::string::npos);

    h.link_state(u->text,
                 {"closed by peer: authentication failed", 5, true, "wrong PEER_SECRET", "L2"});
    auto st = h.status();
    REQUIRE(st.size() == 1);
    CHECK(st[0].permanent_failure);
    CHECK(st[0].failure == "wrong PEER_SECRET");
    CHECK(metrics::global().render().find(series + "1") != std::string::npos);

    auto out = std::make_shared<fake_session>();
    CHECK(h.join(out, "L2", true, u->text).empty());
    st = h.status();
    CHECK_FALSE(st[0].permanent_failure);
    CHECK(st[0].failure.empty());
    CHECK(metrics::global().render().find(series + "0") != std::string::npos);
}

TEST_CASE("hub: an inbound session that works wakes the link to that peer only") {
    temp_dir dir;
    auto cfg = lane_config("L1", dir.path, "a-shared-secret-0123");
    auto u = conf::parse_peer_url("ws://127.0.0.1:2/v1/peer");
    REQUIRE(u);
    cfg.peers.push_back(*u);
    auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
    boost::asio::io_context ioc;
    lanes::hub h(ioc.get_executor(), *store, cfg);
    int woken = 0;
    h.watch_link(u->text, [&] { ++woken; });
    h.peer_reachable("L2"); // the link never learned its peer's id
    CHECK(woken == 0);
    h.link_state(u->text, {"store mismatch", 5, true, "other store", "L2"});
    h.peer_reachable("L3");
    CHECK(woken == 0);
    h.peer_reachable("L2");
    CHECK(woken == 1);
}

TEST_CASE("a wrong secret is a permanent ending: the link says so in status") {
    temp_dir dir;
    runner r;
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    lane bad(r.ioc, lane_config("L9", dir.path, "another-secret-456789"));
    l1.gossip->start();
    bad.peer_with(l1);
    bad.gossip->start();
    stop_first guard{r};
    r.start();
    CHECK(eventually([&] {
        auto s = bad.gossip->status();
        return s[0].permanent_failure && s[0].failure == "wrong PEER_SECRET";
    }));
}

TEST_CASE("a transient ending (nothing listening) is not permanent") {
    temp_dir dir;
    runner r;
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    auto u = conf::parse_peer_url("ws://127.0.0.1:1/v1/peer");
    REQUIRE(u);
    l2.cfg.peers.push_back(*u);
    l2.gossip->start();
    stop_first guard{r};
    r.start();
    CHECK(eventually([&] { return !l2.gossip->status()[0].last_error.empty(); }));
    auto s = l2.gossip->status();
    CHECK(s[0].last_error.find("cannot connect") != std::string::npos);
    CHECK_FALSE(s[0].permanent_failure);
    CHECK(s[0].failure.empty());
}

TEST_CASE("a wiped lane rebuilds from its peer over real sessions, then goes on at hwm + 1") {
    temp_dir dir, wiped;
    runner r;
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    l2.gossip->start();
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    l1.peer_with(l2);
    l1.gossip->start();
    // The same lane on an empty disk (started later): its peer holds 300 of its messages.
    lane fresh(r.ioc, lane_config("L1", wiped.path, "a-shared-secret-0123"));
    fresh.peer_with(l2);
    stop_first guard{r};
    r.start();
    l1.publish(300);
    REQUIRE(eventually([&] { return l2.holds("L1") == 300; }));
    const auto old_inc = l1.store->incarnation();
    std::atomic<bool> stopped{false}; // set on the io thread
    l1.gossip->stop([&] { stopped = true; });
    REQUIRE(eventually([&] { return stopped.load(); }));

    fresh.gossip->start();
    CHECK(eventually([&] { return fresh.holds("L1") == 300 && !fresh.gossip->rebuild().active; }));
    CHECK(fresh.store->incarnation() != old_inc);
    CHECK(counter("lanesync_rebuild_restored_total") >= 300);
    std::optional<std::optional<lanes::rebuild_view>> verdict;
    std::atomic<bool> answered{false}; // set after `verdict`, on the io thread
    fresh.gossip->admit([&](std::optional<lanes::rebuild_view> v) {
        verdict = v;
        answered = true;
    });
    REQUIRE(eventually([&] { return answered.load(); }));
    CHECK_FALSE(verdict->has_value());
    fresh.publish(1);
    CHECK(fresh.holds("L1") == 301);
    CHECK(eventually([&] { return l2.holds("L1") == 301; }));
    CHECK(eventually([&] { return fresh.store->get_counts().peer_ack == 301; }));
    std::atomic<bool> s1{false}, s2{false}; // set on the io thread
    fresh.gossip->stop([&] { s1 = true; });
    l2.gossip->stop([&] { s2 = true; });
    CHECK(eventually([&] { return s1 && s2; }));
}

TEST_CASE("a rebuilding lane goes on above the seqs its peers know are in the cloud") {
    temp_dir dir, wiped;
    runner r;
    lane l2(r.ioc, lane_config("L2", dir.path, "a-shared-secret-0123"));
    l2.gossip->start();
    lane l1(r.ioc, lane_config("L1", dir.path, "a-shared-secret-0123"));
    l1.peer_with(l2);
    l1.gossip->start();
    lane fresh(r.ioc, lane_config("L1", wiped.path, "a-shared-secret-0123"));
    fresh.peer_with(l2);
    stop_first guard{r};
    // The cloud holds L1's 1..35 (what a lane left out of the rebuild held and uploaded); L2
    // knows it (from news, in a store), holds only 1..20.
    std::optional<outbox::count_outcome> known;
    std::atomic<bool> stored{false}; // set after `known`, on the writer thread
    l2.store->origin_cloud_through("L1", 35, [&](outbox::count_outcome o) {
        known = o;
        stored = true;
    });
    REQUIRE(eventually([&] { return stored.load(); }));
    REQUIRE(known->ok);
    r.start();
    l1.publish(20);
    // L2's news tells L1 (up to the mark it verified: 20) that they are in the cloud.
    REQUIRE(
        eventually([&] { return l2.holds("L1") == 20 && l1.store->get_counts().cloud_ack == 20; }));
    std::atomic<bool> stopped{false}; // set on the io thread
    l1.gossip->stop([&] { stopped = true; });
    REQUIRE(eventually([&] { return stopped.load(); }));

    fresh.gossip->start();
    CHECK(eventually([&] { return fresh.holds("L1") == 35 && !fresh.gossip->rebuild().active; }));
    auto c = fresh.store->get_counts();
    CHECK(c.cloud_ack == 20); // all 20 restored first, then known in the cloud
    CHECK(c.pending + c.peer_ack == 0);
    fresh.publish(1); // never hands out 21..35 again
    CHECK(fresh.store->get_counts().own_last_seq == 36);
    CHECK(eventually([&] { return l2.holds("L1") == 36; })); // with a floor over 21..35
    std::atomic<bool> s1{false}, s2{false};                  // set on the io thread
    fresh.gossip->stop([&] { s1 = true; });
    l2.gossip->stop([&] { s2 = true; });
    CHECK(eventually([&] { return s1 && s2; }));
}
