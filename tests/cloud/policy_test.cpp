// The uploader's policy (cloud/policy.hpp): what one request's result means, without sockets,
// clocks or an outbox. Each case is one row of docs/uploader.md's "Reading the answer" table.

#include "cloud/policy.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
using namespace lanesync::cloud;
using kind = decision::kind;

namespace {

http_result answer(int status, std::string body = {}) {
    http_result r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

http_result no_answer(http_result::failure f, std::string error) {
    http_result r;
    r.fail = f;
    r.error = std::move(error);
    return r;
}

sent_batch sent(std::vector<std::string> ids, std::size_t body_bytes = 1000) {
    return sent_batch{std::move(ids), body_bytes, "sync-pos-message"};
}

} // namespace

TEST_CASE("lane_refused: a 400 about the lane object, nothing else") {
    CHECK(lane_refused(answer(400, R"({"error":"lane.pending must be an integer >= 0"})")));
    CHECK(lane_refused(answer(400, R"({"error":"lane has unknown field(s) \"x\""})")));
    CHECK_FALSE(lane_refused(answer(400, R"({"error":"messages[0].topic must be a string"})")));
    CHECK_FALSE(lane_refused(answer(400, R"({"error":"lanes are fine"})")));
    CHECK_FALSE(lane_refused(answer(422, R"({"error":"lane.pending must be an integer >= 0"})")));
    CHECK_FALSE(lane_refused(no_answer(http_result::failure::network, "reset")));
}

TEST_CASE("is_transient: what is retried and what is an answer about the request") {
    for (int s : {0, 401, 403, 404, 408, 425, 429, 500, 502, 503, 504, 546, 599, 301, 307})
        CHECK_MESSAGE(is_transient(s), s);
    for (int s : {200, 400, 405, 409, 410, 413, 415, 422})
        CHECK_FALSE_MESSAGE(is_transient(s), s);
}

TEST_CASE("decide: a 2xx answering every message acks them all, rejected ones included") {
    auto d = decide(answer(200, R"({"results":[{"messageId":"a","status":"stored"},
                                                {"messageId":"B","status":"duplicate"},
                                                {"messageId":"c","status":"rejected",
                                                 "error":"unknown sku"}]})"),
                    sent({"a", "b", "c"}));
    CHECK(d.k == kind::ack);
    CHECK(d.outcome == "ok");
    CHECK(d.http_status == 200);
    REQUIRE(d.results.size() == 3);
    CHECK(d.results[0].k == outbox::cloud_result::stored);
    CHECK(d.results[1].id == "b"); // ids compare case-insensitively; ours are kept
    CHECK(d.results[1].k == outbox::cloud_result::duplicate);
    CHECK(d.results[2].k == outbox::cloud_result::rejected);
    CHECK(d.results[2].error == "unknown sku");
    CHECK(d.retry.empty());
    CHECK(d.error.empty());
}

TEST_CASE("decide: a partial 2xx acks what is usable and retries the rest with backoff") {
    auto d = decide(answer(200, R"({"results":[{"messageId":"a","status":"stored"},
                                                {"messageId":"zz","status":"stored"}]})"),
                    sent({"a", "b", "c"}));
    CHECK(d.k == kind::ack_and_retry);
    CHECK(d.outcome == "bad_response");
    REQUIRE(d.results.size() == 1);
    CHECK(d.results[0].id == "a");
    CHECK(d.retry == std::vector<std::string>{"b", "c"});
    CHECK(d.problem ==
          "2 of 3 messages without a usable result, 1 results for ids not in the batch");
    CHECK(d.error == "unusable answer from the cloud (HTTP 200): " + d.problem);
}

TEST_CASE("decide: a 2xx that is not the expected shape applies nothing and retries all") {
    for (const char* body : {"<html>gateway</html>", R"({"results":5})", "", "[]"}) {
        auto d = decide(answer(200, body), sent({"a", "b"}));
        CHECK_MESSAGE(d.k == kind::ack_and_retry, body);
        CHECK(d.results.empty());
        CHECK(d.retry == std::vector<std::string>{"a", "b"});
        CHECK(d.error.find("unusable answer from the cloud (HTTP 200)") == 0);
    }
}

TEST_CASE("decide: every id answered but an unknown id as well retries the whole batch") {
    auto d = decide(answer(201, R"({"results":[{"messageId":"a","status":"stored"},
                                                {"messageId":"x","status":"stored"}]})"),
                    sent({"a"}));
    CHECK(d.k == kind::ack_and_retry);
    CHECK(d.results.size() == 1);
    CHECK(d.retry == std::vector<std::string>{"a"});
    CHECK(d.error.find("unusable answer from the cloud (HTTP 201)") == 0);
}

TEST_CASE("decide: 413 splits in halves and lowers the byte cap to half the refused body") {
    auto d = decide(answer(413, "Payload Too Large"), sent({"a", "b", "c", "d", "e"}, 9001));
    CHECK(d.k == kind::split);
    CHECK(d.outcome == "too_large");
    CHECK(d.split_at == 2);
    REQUIRE(d.byte_cap);
    CHECK(*d.byte_cap == 4500);
    CHECK(*decide(answer(413), sent({"a", "b"}, 1)).byte_cap == 1); // never a zero cap
}

TEST_CASE("decide: 413 for a single message fails it as too large") {
    auto d = decide(answer(413, R"({"error":"body over 6 MiB"})"), sent({"a"}));
    CHECK(d.k == kind::fail);
    CHECK(d.outcome == "too_large");
    CHECK(d.reason == "too large for the cloud");
}

TEST_CASE("decide: 400, 409, 422 and other 4xx are bisected without lowering the cap") {
    for (int st : {400, 405, 409, 410, 415, 422}) {
        auto d = decide(answer(st), sent({"a", "b", "c"}));
        CHECK_MESSAGE(d.k == kind::split, st);
        CHECK(d.outcome == "rejected_batch");
        CHECK(d.split_at == 1);
        CHECK_FALSE(d.byte_cap);
    }
}

TEST_CASE("decide: a 4xx for a single message fails it with the function's error text") {
    auto d = decide(answer(400, R"({"error":"invalid message payload"})"), sent({"a"}));
    CHECK(d.k == kind::fail);
    CHECK(d.outcome == "rejected_batch");
    CHECK(d.http_status == 400);
    CHECK(d.reason == "cloud rejected the request (HTTP 400): invalid message payload");
    auto bare = decide(answer(422, "not json"), sent({"a"}));
    CHECK(bare.reason == "cloud rejected the request (HTTP 422)");
}

TEST_CASE("decide: 401 and 403 are an auth error, retried; messages never fail for it") {
    for (int st : {401, 403}) {
        auto d = decide(answer(st, R"({"error":"bad key"})"), sent({"a", "b"}));
        CHECK(d.k == kind::auth_error);
        CHECK(d.outcome == "http_error");
        CHECK(d.results.empty());
        CHECK(d.error == "cloud rejected the service key (HTTP " + std::to_string(st) + ")");
    }
}

TEST_CASE("decide: 404 is retried slowly and names the function") {
    auto d = decide(answer(404), sent({"a"}));
    CHECK(d.k == kind::retry_slowly);
    CHECK(d.outcome == "http_error");
    CHECK(d.error == "edge function sync-pos-message not found (HTTP 404): is it deployed?");
}

TEST_CASE("decide: 408, 425, 429, 5xx and 3xx are retried with backoff and a status line") {
    const std::vector<std::pair<int, std::string>> rows = {
        {408, "cloud request timeout (HTTP 408)"},
        {425, "unexpected answer (HTTP 425)"},
        {429, "cloud rate limit (HTTP 429)"},
        {500, "cloud server error (HTTP 500)"},
        {503, "cloud server error (HTTP 503)"},
        {546, "edge function hit its resource limit (HTTP 546 WORKER_LIMIT)"},
        {301, "unexpected redirect (HTTP 301): check SUPABASE_URL"},
        {307, "unexpected redirect (HTTP 307): check SUPABASE_URL"},
    };
    for (const auto& [st, text] : rows) {
        auto d = decide(answer(st, R"({"error":"never shown"})"), sent({"a", "b"}));
        CHECK_MESSAGE(d.k == kind::retry, st);
        CHECK(d.outcome == "http_error");
        CHECK(d.http_status == st);
        CHECK(d.error == text); // built from the code alone, never from the body
    }
}

TEST_CASE("decide: no answer is retried with the transport's words and label") {
    using f = http_result::failure;
    const std::vector<std::pair<f, std::string>> rows = {{f::network, "network"},
                                                         {f::timeout, "timeout"},
                                                         {f::tls, "tls"},
                                                         {f::bad_response, "bad_response"}};
    for (const auto& [fail, label] : rows) {
        auto d = decide(no_answer(fail, "connecting to http://127.0.0.1:9 failed: refused"),
                        sent({"a"}));
        CHECK(d.k == kind::retry);
        CHECK(d.outcome == label);
        CHECK(d.http_status == 0);
        CHECK(d.error == "connecting to http://127.0.0.1:9 failed: refused");
    }
}

TEST_CASE("decide: a cancelled request records nothing") {
    auto d = decide(no_answer(http_result::failure::cancelled, "cancelled"), sent({"a"}));
    CHECK(d.k == kind::cancelled);
    CHECK(d.results.empty());
    CHECK(d.error.empty());
}

// ---- covered uploads (replica takeover) -------------------------------------------------------

namespace {

outbox::record rec(const std::string& id, const std::string& origin, std::uint64_t seq,
                   protocol::priority prio = protocol::priority::normal) {
    outbox::record r;
    r.msg.id = id;
    r.msg.origin = origin;
    r.msg.seq = seq;
    r.msg.prio = prio;
    r.own = origin == "L1";
    return r;
}

std::vector<std::string> ids_of(const std::vector<outbox::record>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs)
        out.push_back(r.msg.id);
    return out;
}

} // namespace

TEST_CASE("covered_origins: valid ids other than this lane, each once, sorted") {
    CHECK(covered_origins({}, "L1").empty());
    CHECK(covered_origins({"L1"}, "L1").empty());
    CHECK(covered_origins({"L3", "L2", "L3", "L1", "", "bad id", std::string(33, 'x')}, "L1") ==
          std::vector<std::string>{"L2", "L3"});
}

TEST_CASE("compose_round: by priority, own first within a level, at most limit") {
    using P = protocol::priority;
    std::vector<outbox::record> own = {rec("a", "L1", 1), rec("b", "L1", 2)};
    // As next_replicas_for_cloud orders them: priority, then origin, then seq.
    std::vector<outbox::record> covered = {rec("x", "L3", 9, P::critical), rec("y", "L2", 4),
                                           rec("z", "L3", 5)};
    CHECK(ids_of(compose_round(own, covered, 50)) ==
          std::vector<std::string>{"x", "a", "b", "y", "z"});
    CHECK(ids_of(compose_round(own, covered, 3)) == std::vector<std::string>{"x", "a", "b"});
    CHECK(ids_of(compose_round(own, covered, 2)) == std::vector<std::string>{"x", "a"});
    // The own queue is empty: a batch of replicas only.
    CHECK(ids_of(compose_round({}, covered, 2)) == std::vector<std::string>{"x", "y"});
    // Nothing covered: the own batch as the outbox gave it.
    CHECK(ids_of(compose_round(own, {}, 50)) == std::vector<std::string>{"a", "b"});
    // Own messages of every level, as next_for_cloud gives them (priority, then seq), merged
    // with replicas of every level: each level whole before the next, own first in it.
    std::vector<outbox::record> own4 = {rec("o-crit", "L1", 7, P::critical),
                                        rec("o-high", "L1", 3, P::high), rec("o-norm", "L1", 1),
                                        rec("o-low", "L1", 2, P::low)};
    std::vector<outbox::record> cov4 = {rec("c-crit", "L2", 5, P::critical),
                                        rec("c-high", "L2", 2, P::high),
                                        rec("c-low", "L2", 1, P::low)};
    CHECK(ids_of(compose_round(own4, cov4, 50)) ==
          std::vector<std::string>{"o-crit", "c-crit", "o-high", "c-high", "o-norm", "o-low",
                                   "c-low"});
    CHECK(ids_of(compose_round(own4, cov4, 3)) ==
          std::vector<std::string>{"o-crit", "c-crit", "o-high"});
}

TEST_CASE("compose_round: an id already in the batch waits for a later round") {
    // One id on two lanes (a POS retry): held as own and as L3's replica, or under L2 and L3.
    std::vector<outbox::record> own = {rec("same", "L1", 7)};
    std::vector<outbox::record> covered = {rec("same", "L3", 2), rec("p", "L3", 3),
                                           rec("q", "L2", 1), rec("q", "L3", 4)};
    auto round = compose_round(own, covered, 50);
    REQUIRE(round.size() == 3);
    CHECK(ids_of(round) == std::vector<std::string>{"same", "p", "q"});
    CHECK(round[0].msg.origin == "L1");
    CHECK(round[2].msg.origin == "L2");
    // The skipped one does not count against the room.
    CHECK(ids_of(compose_round(own, covered, 2)) == std::vector<std::string>{"same", "p"});
}
