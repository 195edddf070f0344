// agent/init_store: the plan of a store's env files (pure; the command is tested end to end
// in tests/integration/test_init_store.py).

#include "agent/init_store.hpp"

#include "conf/config.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace lanesync;
using namespace lanesync::agent;

namespace {

init_store_options three_lanes() {
    init_store_options o;
    o.lanes = {"L1", "L2", "L3"};
    o.peer_secret = "0123456789abcdef0123456789abcdef";
    return o;
}

std::string plan_error(const init_store_options& o) {
    std::string error;
    auto files = plan_store(o, error);
    CHECK_FALSE(files);
    return error;
}

} // namespace

TEST_CASE("plan_store: one loopback machine: consecutive ports, every other lane a peer") {
    std::string error;
    auto files = plan_store(three_lanes(), error);
    REQUIRE(files);
    REQUIRE(files->size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& f = (*files)[i];
        CHECK(f.peer_port == 8123 + i);
        CHECK(f.api_port == 9123 + i);
        CHECK(f.filename == f.lane + ".env");
        // The text is a valid env file whose values are the plan's.
        auto l = conf::load_text(f.text, f.filename,
                                 [](const std::string&) { return std::optional<std::string>(); });
        CHECK(l.cfg.terminal_id == f.lane);
        CHECK(l.cfg.store_id == "store-1");
        CHECK(l.cfg.terminal_port == f.peer_port);
        CHECK(l.cfg.local_api_port == f.api_port);
        CHECK(l.cfg.terminal_bind == "127.0.0.1");
        CHECK(l.cfg.peer_secret == "0123456789abcdef0123456789abcdef");
        CHECK(l.cfg.peers.size() == 2);
        CHECK(l.warnings.empty());
    }
    CHECK(files->at(0).text.find("PEER_TERMINALS=ws://127.0.0.1:8124/v1/peer,"
                                 "ws://127.0.0.1:8125/v1/peer\n") != std::string::npos);
}

TEST_CASE("plan_store: one PC per lane: the same ports everywhere, bound to every address") {
    auto o = three_lanes();
    o.hosts = {"10.0.0.11", "lane2.local", "fd00::13"};
    std::string error;
    auto files = plan_store(o, error);
    REQUIRE(files);
    for (const auto& f : *files) {
        CHECK(f.peer_port == 8123);
        CHECK(f.api_port == 9123);
        // An IPv6 host listens on every IPv6 address (peers dial it in brackets).
        const bool v6 = f.host == "fd00::13";
        CHECK(f.text.find(v6 ? "TERMINAL_BIND=::\n" : "TERMINAL_BIND=0.0.0.0\n") !=
              std::string::npos);
    }
    CHECK(files->at(2).peer_url == "ws://[fd00::13]:8123/v1/peer");
    CHECK(files->at(1).text.find("PEER_TERMINALS=ws://10.0.0.11:8123/v1/peer,"
                                 "ws://[fd00::13]:8123/v1/peer\n") != std::string::npos);
    // Two lanes on one PC, one on another: the shared PC's second lane gets the next ports.
    o.hosts = {"pc1", "pc1", "pc2"};
    files = plan_store(o, error);
    REQUIRE(files);
    CHECK(files->at(1).peer_port == 8124);
    CHECK(files->at(2).peer_port == 8123);
}

TEST_CASE("plan_store: a single lane has no peers and no quorum") {
    init_store_options o;
    o.lanes = {"L1"};
    o.peer_secret = "0123456789abcdef";
    std::string error;
    auto files = plan_store(o, error);
    REQUIRE(files);
    CHECK(files->at(0).text.find("PEER_TERMINALS=") == std::string::npos);
    CHECK(files->at(0).text.find("PEER_ACK_QUORUM=") == std::string::npos);
    auto l = conf::load_text(files->at(0).text, "L1.env",
                             [](const std::string&) { return std::optional<std::string>(); });
    CHECK(l.cfg.peers.empty());
}

TEST_CASE("plan_store: bad input is refused with the reason") {
    auto o = three_lanes();
    o.lanes = {};
    CHECK(plan_error(o) == "--lanes: give at least one lane id");
    o = three_lanes();
    o.lanes = {"L1", "L1"};
    CHECK(plan_error(o) == "--lanes: L1 is given twice");
    o.lanes = {"L1", "bad id"};
    CHECK(plan_error(o).find("\"bad id\" is not a valid lane id") != std::string::npos);
    o = three_lanes();
    o.hosts = {"a", "b"};
    CHECK(plan_error(o) == "--hosts: 2 hosts for 3 lanes (give one host per lane)");
    o.hosts = {"a", "b/c", "d"};
    CHECK(plan_error(o) == "--hosts: \"b/c\" is not a host name or IP address");
    o = three_lanes();
    o.store_id = "a store";
    CHECK(plan_error(o).find("is not a valid store id") != std::string::npos);
    o = three_lanes();
    o.peer_port = 65534;
    CHECK(plan_error(o) == "ports past 65535: lower --port or --api-port");
    o = three_lanes();
    o.peer_port = 9000;
    o.api_port = 9002;
    CHECK(plan_error(o).find("would both use port 9002") != std::string::npos);
    o = three_lanes();
    o.peer_secret = "short";
    CHECK(plan_error(o) == "the peer secret is shorter than 16 characters");
}

TEST_CASE("generate_peer_secret: 64 hex digits, different every time") {
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        auto s = generate_peer_secret();
        CHECK(s.size() == 64);
        CHECK(s.find_first_not_of("0123456789abcdef") == std::string::npos);
        seen.insert(s);
    }
    CHECK(seen.size() == 20);
}

TEST_CASE("split_list: commas, blanks trimmed, empty items kept") {
    CHECK(split_list("L1,L2, L3 ") == std::vector<std::string>{"L1", "L2", "L3"});
    CHECK(split_list("L1,,L2") == std::vector<std::string>{"L1", "", "L2"});
    CHECK(split_list("") == std::vector<std::string>{""});
}
