// Pure parts of the uploader: the endpoint, the request body and the reading of the cloud's
// answer. No sockets. (The retry rules are in policy_test.cpp, the backoff in backoff_test.cpp.)

#include "cloud/uploader.hpp"
#include "cloud/wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace lanesync;
using namespace lanesync::cloud;

TEST_CASE("make_endpoint: target, Host header and origin from the parsed SUPABASE_URL") {
    // The URL forms themselves are conf's (tests/conf/cloud_url_test.cpp).
    auto a =
        wire::make_endpoint(*conf::parse_cloud_url("https://abc.supabase.co"), "sync-pos-message");
    CHECK(a.tls);
    CHECK(a.host == "abc.supabase.co");
    CHECK(a.port == 443);
    CHECK(a.target == "/functions/v1/sync-pos-message");
    CHECK(a.host_header == "abc.supabase.co");
    CHECK_FALSE(a.host_is_ip);

    auto b = wire::make_endpoint(*conf::parse_cloud_url("http://127.0.0.1:54321/"), "f");
    CHECK_FALSE(b.tls);
    CHECK(b.port == 54321);
    CHECK(b.host_is_ip);
    CHECK(b.target == "/functions/v1/f");
    CHECK(b.host_header == "127.0.0.1:54321");
    CHECK(b.origin() == "http://127.0.0.1:54321");

    auto c = wire::make_endpoint(*conf::parse_cloud_url("HTTPS://[::1]:8443/"), "f");
    CHECK(c.host == "::1");
    CHECK(c.host_is_ip);
    CHECK(c.host_header == "[::1]:8443");
    CHECK(c.origin() == "https://[::1]:8443");

    auto d = wire::make_endpoint(*conf::parse_cloud_url("https://h:443"), "f");
    CHECK(d.host_header == "h"); // the scheme's default port is left out of Host

    conf::cloud_url prefixed = *conf::parse_cloud_url("https://h");
    prefixed.base_path = "/base/path";
    CHECK(wire::make_endpoint(prefixed, "f").target == "/base/path/functions/v1/f");
}

namespace {

outbox::record make_record(std::uint64_t seq, std::string data = R"({"sku":"A1","qty":2})") {
    outbox::record r;
    r.msg.id = "0190f3a2-0000-7000-8000-00000000000" + std::to_string(seq % 10);
    r.msg.origin = "L1";
    r.msg.seq = seq;
    r.msg.topic = "transaction";
    r.msg.prio = protocol::priority::high;
    r.msg.data = std::move(data);
    r.msg.created_at_ms = 1'795'000'000'123;
    r.st = outbox::state::peer_ack;
    r.own = true;
    return r;
}

} // namespace

TEST_CASE("encode_message: the contract's fields, data embedded as an object") {
    auto r = make_record(7);
    r.peer_acked_at_ms = 1'795'000'001'000;
    auto text = wire::encode_message(r, "store-9");
    REQUIRE(text);
    auto j = nlohmann::json::parse(*text);
    CHECK(j["messageId"] == r.msg.id);
    CHECK(j["storeId"] == "store-9");
    CHECK(j["terminalId"] == "L1");
    CHECK(j["seq"] == 7);
    CHECK(j["topic"] == "transaction");
    CHECK(j["priority"] == "high");
    CHECK(j["data"].is_object());
    CHECK(j["data"]["qty"] == 2);
    CHECK(j["timestamp"] == protocol::format_time_ms(r.msg.created_at_ms));
    CHECK(j["peerAckedAt"] == protocol::format_time_ms(*r.peer_acked_at_ms));
    CHECK(j.size() == 9);

    r.peer_acked_at_ms.reset();
    CHECK(nlohmann::json::parse(*wire::encode_message(r, "s"))["peerAckedAt"].is_null());

    CHECK_FALSE(wire::encode_message(make_record(1, "not json"), "s"));
    CHECK_FALSE(wire::encode_message(make_record(1, "[1,2]"), "s"));
}

TEST_CASE("encode_message: a covered replica keeps its origin's terminalId, adds uploadedBy") {
    auto r = make_record(4);
    r.msg.origin = "L3";
    r.own = false;
    r.peer_acked_at_ms.reset();
    r.stored_at_ms = 1'795'000'000'500;
    auto j = nlohmann::json::parse(*wire::encode_message(r, "store-1", "L2"));
    CHECK(j["terminalId"] == "L3");
    CHECK(j["uploadedBy"] == "L2");
    CHECK(j["seq"] == 4);
    CHECK(j.size() == 10);
    // A replica has no peer_acked_at of its own: it has been on two disks since it was stored.
    CHECK(j["peerAckedAt"] == protocol::format_time_ms(r.stored_at_ms));
    // Own messages (and the default) carry no uploadedBy at all.
    CHECK_FALSE(nlohmann::json::parse(*wire::encode_message(r, "store-1")).contains("uploadedBy"));
    CHECK_FALSE(
        nlohmann::json::parse(*wire::encode_message(r, "store-1", "")).contains("uploadedBy"));
}

TEST_CASE("wrap_messages and wrapped_size agree") {
    std::vector<std::string> parts;
    CHECK(wire::wrap_messages(parts) == R"({"messages":[]})");
    CHECK(wire::wrapped_size(0, 0) == wire::wrap_messages(parts).size());
    std::size_t bytes = 0;
    for (std::uint64_t i = 1; i <= 5; ++i) {
        parts.push_back(*wire::encode_message(make_record(i), "s"));
        bytes += parts.back().size();
        auto body = wire::wrap_messages(parts);
        CHECK(body.size() == wire::wrapped_size(bytes, parts.size()));
        CHECK(nlohmann::json::parse(body)["messages"].size() == i);
    }
}

TEST_CASE("the lane summary: from the outbox's counts, after the messages, sized for") {
    outbox::counts c;
    c.pending = 2;
    c.peer_ack = 5;
    c.cloud_ack = 7;
    c.failed = 1;
    c.own_last_seq = 15;
    c.oldest_pending_stored_at_ms = 9'000;
    c.oldest_peer_ack_at_ms = 10'500; // a clock step: never a negative age
    auto s = wire::summarize(c, 10'000);
    CHECK(s.at_ms == 10'000);
    CHECK(s.oldest_pending_age_ms == 1'000);
    CHECK(s.oldest_peer_ack_age_ms == 0);
    CHECK(wire::summarize(outbox::counts{}, 1).oldest_pending_age_ms == std::nullopt);
    s.peers_up = 1;
    s.peers_configured = 2;
    s.retry_depth = 3;
    const std::string lane = wire::encode_lane(s, std::string(64, 's'), std::string(32, 't'));
    CHECK(lane.size() <= wire::max_lane_bytes);
    auto j = nlohmann::json::parse(lane);
    CHECK(j == nlohmann::json{{"storeId", std::string(64, 's')},
                              {"terminalId", std::string(32, 't')},
                              {"agentVersion", LANESYNC_VERSION},
                              {"at", 10'000},
                              {"pending", 2},
                              {"peerAck", 5},
                              {"cloudAck", 7},
                              {"failed", 1},
                              {"oldestPendingAgeMs", 1'000},
                              {"oldestPeerAckAgeMs", 0},
                              {"lastSeq", 15},
                              {"peersUp", 1},
                              {"peersConfigured", 2},
                              {"retryDepth", 3}});
    const std::vector<std::string> parts = {*wire::encode_message(make_record(1), "s")};
    auto body = wire::wrap_messages(parts, lane);
    CHECK(body.size() == wire::wrapped_size(parts[0].size(), 1, lane.size()));
    CHECK(nlohmann::json::parse(body)["lane"] == j);
    auto beat = wire::wrap_messages({}, lane);
    CHECK(beat.size() == wire::wrapped_size(0, 0, lane.size()));
    CHECK(nlohmann::json::parse(beat)["messages"].empty());
}

TEST_CASE("decode_results: a clean answer") {
    std::vector<std::string> ids = {"a", "b", "c"};
    auto d = wire::decode_results(
        R"({"results":[{"messageId":"a","status":"stored"},{"messageId":"b","status":"duplicate"},
                       {"messageId":"c","status":"rejected","error":"unknown sku"}]})",
        ids);
    CHECK(d.clean());
    CHECK(d.problem().empty());
    REQUIRE(d.results.size() == 3);
    CHECK(d.results[0].k == outbox::cloud_result::stored);
    CHECK(d.results[1].k == outbox::cloud_result::duplicate);
    CHECK(d.results[2].k == outbox::cloud_result::rejected);
    CHECK(d.results[2].error == "unknown sku");
    CHECK(d.rejected == 1);
}

TEST_CASE("decode_results: ill-shaped answers apply what is well-formed and list the rest") {
    std::vector<std::string> ids = {"a", "b", "c", "d"};
    SUBCASE("not JSON, or no results array: nothing applies") {
        for (const char* body : {"", "<html>", "[]", R"({"results":5})", R"({"ok":true})"}) {
            auto d = wire::decode_results(body, ids);
            CHECK_FALSE(d.parsed);
            CHECK_FALSE(d.clean());
            CHECK(d.results.empty());
            CHECK(d.missing == ids);
            CHECK_FALSE(d.problem().empty());
        }
    }
    SUBCASE("missing, unknown, malformed and conflicting entries") {
        auto d = wire::decode_results(R"({"results":[
            {"messageId":"a","status":"stored"},
            {"messageId":"zz","status":"stored"},
            {"messageId":"b","status":"weird"},
            {"messageId":"b"},
            7,
            {"messageId":"c","status":"stored"},
            {"messageId":"c","status":"rejected"},
            {"messageId":"a","status":"stored"}]})",
                                      ids);
        CHECK(d.parsed);
        CHECK_FALSE(d.clean());
        REQUIRE(d.results.size() == 1); // a: answered twice, the same way
        CHECK(d.results[0].id == "a");
        CHECK(d.missing == std::vector<std::string>{"b", "c", "d"});
        CHECK(d.unknown_ids == 1);
        CHECK(d.malformed == 3);
        CHECK(d.conflicting == 1);
        auto p = d.problem();
        CHECK(p.find("3 of 4 messages without a usable result") != std::string::npos);
        CHECK(p.find("ids not in the batch") != std::string::npos);
    }
    SUBCASE("ids compare case-insensitively, the batch's spelling is kept") {
        std::vector<std::string> uu = {"0190f3a2-0000-7000-8000-00000000000a"};
        auto d = wire::decode_results(
            R"({"results":[{"messageId":"0190F3A2-0000-7000-8000-00000000000A","status":"stored"}]})",
            uu);
        CHECK(d.clean());
        CHECK(d.results.at(0).id == uu[0]);
    }
    SUBCASE("a rejection without a reason gets one") {
        auto d =
            wire::decode_results(R"({"results":[{"messageId":"a","status":"rejected"}]})", {"a"});
        CHECK(d.results.at(0).error == "rejected by the cloud");
    }
}

TEST_CASE("error_text: the reason from an error body, one line, bounded") {
    CHECK(wire::error_text(R"({"error":"bad\npayload"})") == "bad payload");
    CHECK(wire::error_text(R"({"message":"nope"})") == "nope");
    CHECK(wire::error_text("<html>502</html>").empty());
    CHECK(wire::error_text(R"({"error":5})").empty());
    auto long_text = wire::error_text(nlohmann::json{{"error", std::string(1000, 'x')}}.dump(), 50);
    CHECK(long_text.size() <= 53);
}

TEST_CASE("highest seq: the query's target and the answer's reading") {
    conf::cloud_url u;
    u.host = "abc.supabase.co";
    u.port = 443;
    u.tls = true;
    auto ep = wire::make_endpoint(u, "sync-pos-message");
    CHECK(wire::highest_seq_target(ep, "st-1", "L_2") ==
          "/functions/v1/sync-pos-message?storeId=st-1&terminalId=L_2");

    auto ok = [](int status, std::string body) {
        cloud::http_result r;
        r.status = status;
        r.body = std::move(body);
        return wire::read_highest_seq(r, "st-1", "L1");
    };
    auto a = ok(200, R"({"storeId":"st-1","terminalId":"L1","highestSeq":0})");
    CHECK(a.seq == std::uint64_t{0});
    CHECK(ok(200, R"({"storeId":"st-1","terminalId":"L1","highestSeq":9007199254740992})").seq ==
          std::uint64_t{1} << 53);
    for (const char* bad :
         {R"({"storeId":"st-1","terminalId":"L1","highestSeq":9007199254740993})",
          R"({"storeId":"st-1","terminalId":"L1","highestSeq":-1})",
          R"({"storeId":"st-1","terminalId":"L1","highestSeq":1.5})",
          R"({"storeId":"st-1","terminalId":"L1","highestSeq":"7"})",
          R"({"storeId":"st-1","terminalId":"L1"})",
          R"({"storeId":"st-2","terminalId":"L1","highestSeq":1})",
          R"({"storeId":"st-1","terminalId":"L2","highestSeq":1})", "[]", "not json"}) {
        CAPTURE(bad);
        auto r = ok(200, bad);
        CHECK_FALSE(r.seq);
        CHECK(r.error.find("malformed answer") == 0);
    }
    CHECK(ok(401, R"({"error":"missing or invalid service key"})").error ==
          "HTTP 401: missing or invalid service key");
    CHECK(ok(405, "").error == "HTTP 405");
    cloud::http_result down;
    down.fail = cloud::http_result::failure::network;
    down.error = "connect: Connection refused";
    CHECK(wire::read_highest_seq(down, "st-1", "L1").error == "connect: Connection refused");
}
