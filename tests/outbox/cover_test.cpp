// Takeover and the spread of cloud_ack in the outbox: own messages known in the cloud through
// a peer, next_replicas_for_cloud, cloud answers for replicas, origin_summaries, and
// next_for_peer serving a rebuilding peer.

#include "helpers.hpp"

#include "outbox/detail/queries.hpp"

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

namespace {

protocol::message prio_replica(const std::string& origin, unsigned lane, std::uint64_t seq,
                               protocol::priority p) {
    auto m = replica(origin, lane, seq);
    m.prio = p;
    return m;
}

cloud_result replica_result(const std::string& origin, unsigned lane, std::uint64_t seq,
                            cloud_result::kind k, std::string err = {}) {
    auto r = cloud(uuid(lane, seq), k, std::move(err));
    r.origin = origin;
    return r;
}

std::vector<std::string> keys(const std::vector<record>& recs) {
    std::vector<std::string> out;
    for (const auto& r : recs)
        out.push_back(r.msg.origin + ":" + std::to_string(r.msg.seq));
    return out;
}

} // namespace

TEST_CASE("own cloud_through from a peer: pending and peer_ack become cloud_ack, failed stay") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto recs = publish_n(*s, 6);
    REQUIRE(peer_acked_sync(*s, "L2", 3, 1).promoted_latency_ms.size() == 3);
    REQUIRE(cloud_acked_sync(*s, {cloud(recs[1].msg.id, cloud_result::rejected, "bad")}).failed ==
            1);

    const auto before = protocol::now_ms();
    auto r = origin_cloud_through_sync(*s, "L1", 4);
    CHECK(r.ok);
    CHECK(r.count == 3); // seqs 1, 3 (peer_ack) and 4 (pending); 2 is failed
    CHECK(s->get(recs[0].msg.id)->st == state::cloud_ack);
    CHECK(*s->get(recs[0].msg.id)->cloud_acked_at_ms >= before);
    CHECK(s->get(recs[1].msg.id)->st == state::failed);
    CHECK(s->get(recs[1].msg.id)->last_error == "bad");
    CHECK(s->get(recs[3].msg.id)->st == state::cloud_ack);
    CHECK(s->get(recs[4].msg.id)->st == state::pending);
    // The failed seq 2 blocks contiguity: the own cloud_through stays 1.
    CHECK(s->cloud_through().at("L1") == 1);
    auto c = s->get_counts();
    CHECK(c.cloud_ack == 3);
    CHECK(c.failed == 1);
    CHECK(c.pending == 2);
    CHECK(c.peer_ack == 0);
    CHECK(s->next_for_cloud(10, true).size() == 2); // only 5 and 6 are left to upload

    // Never above the own hwm, never back; a retry of the failed one and the cloud's own
    // answer close the gap.
    CHECK(origin_cloud_through_sync(*s, "L1", 100).count == 2);
    CHECK(s->get_counts().cloud_ack == 5);
    CHECK(origin_cloud_through_sync(*s, "L1", 3).count == 0);
    REQUIRE(retry_sync(*s, {recs[1].msg.id}).count == 1);
    REQUIRE(cloud_acked_sync(*s, {cloud(recs[1].msg.id, cloud_result::stored)}).acked == 1);
    CHECK(s->cloud_through().at("L1") == 6);
    CHECK(publish_sync(*s, req()).rec.msg.seq == 7);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("next_replicas_for_cloud: priority, then origin, then seq, above cloud_through") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    using P = protocol::priority;
    publish_n(*s, 2); // own messages are never returned
    REQUIRE(store_replicas_sync(
                *s, {prio_replica("L3", 3, 1, P::normal), prio_replica("L3", 3, 2, P::critical),
                     prio_replica("L3", 3, 3, P::low), prio_replica("L2", 2, 1, P::critical),
                     prio_replica("L2", 2, 2, P::normal), prio_replica("L2", 2, 3, P::normal),
                     prio_replica("L2", 2, 4, P::critical), prio_replica("L4", 4, 1, P::critical)})
                .ok);
    // L2:1 is known in the cloud already (a peer's news).
    REQUIRE(origin_cloud_through_sync(*s, "L2", 1).count == 1);

    auto all = s->next_replicas_for_cloud({"L3", "L2", "L1"}, 100);
    CHECK(keys(all) == std::vector<std::string>{"L2:4", "L3:2", "L2:2", "L2:3", "L3:1", "L3:3"});
    for (const auto& r : all) {
        CHECK_FALSE(r.own);
        CHECK(r.st == state::pending);
    }
    CHECK(keys(s->next_replicas_for_cloud({"L2", "L3"}, 3)) ==
          std::vector<std::string>{"L2:4", "L3:2", "L2:2"});
    CHECK(keys(s->next_replicas_for_cloud({"L4"}, 10)) == std::vector<std::string>{"L4:1"});
    CHECK(s->next_replicas_for_cloud({"L9"}, 10).empty());
    CHECK(s->next_replicas_for_cloud({"L1"}, 10).empty());
    CHECK(s->next_replicas_for_cloud({"L2"}, 0).empty());
    CHECK(s->next_replicas_for_cloud({}, 10).empty());

    // Acked and failed replicas are not offered again.
    REQUIRE(cloud_acked_sync(*s, {replica_result("L2", 2, 4, cloud_result::stored),
                                  replica_result("L3", 3, 2, cloud_result::rejected, "x")})
                .ok);
    CHECK(keys(s->next_replicas_for_cloud({"L2", "L3"}, 100)) ==
          std::vector<std::string>{"L2:2", "L2:3", "L3:1", "L3:3"});
}

TEST_CASE("next_replicas_for_cloud uses the messages_priority index") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    raw_db db(path);
    auto plan = db.rows("EXPLAIN QUERY PLAN " +
                        std::string(lanesync::outbox::detail::sql::pending_by_priority));
    bool uses = false;
    for (const auto& row : plan)
        uses |= row.back().find("USING INDEX messages_priority") != std::string::npos;
    CHECK(uses);
}

TEST_CASE("cloud answers for replicas: cloud_ack or failed; cloud_through rises contiguously") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto own = publish_n(*s, 1);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3),
                                     replica("L2", 2, 4)})
                .ok);
    // seq 2 first: not contiguous from the bottom, so cloud_through stays 0.
    auto r = cloud_acked_sync(*s, {replica_result("L2", 2, 2, cloud_result::stored)});
    CHECK(r.ok);
    CHECK(r.acked == 1);
    CHECK(r.latency_ms.empty()); // latencies measure own messages only
    CHECK(s->get(uuid(2, 2))->st == state::cloud_ack);
    CHECK(s->get(uuid(2, 2))->cloud_acked_at_ms);
    CHECK(s->cloud_through().at("L2") == 0);

    r = cloud_acked_sync(*s, {replica_result("L2", 2, 1, cloud_result::duplicate),
                              replica_result("L2", 2, 4, cloud_result::rejected, "conflict"),
                              replica_result("L2", 2, 9, cloud_result::stored)}); // not held
    CHECK(r.acked == 1);
    CHECK(r.failed == 1);
    CHECK(s->cloud_through().at("L2") == 2);
    auto failed = s->get(uuid(2, 4));
    CHECK(failed->st == state::failed);
    CHECK(failed->last_error == "conflict");
    CHECK(s->get(uuid(2, 3))->st == state::pending);

    r = cloud_acked_sync(*s, {replica_result("L2", 2, 3, cloud_result::stored)});
    CHECK(s->cloud_through().at("L2") == 3); // the failed seq 4 blocks it
    // The own copy is untouched by a replica's answer with the same id under another origin,
    // and own answers still work (origin empty or this lane).
    CHECK(s->get(own[0].msg.id)->st == state::pending);
    auto mine = cloud(own[0].msg.id, cloud_result::stored);
    mine.origin = "L1";
    CHECK(cloud_acked_sync(*s, {mine}).latency_ms.size() == 1);
    CHECK(s->cloud_through().at("L1") == 1);
    // A later rejection never downgrades a cloud_ack replica.
    CHECK(
        cloud_acked_sync(*s, {replica_result("L2", 2, 1, cloud_result::rejected, "late")}).failed ==
        0);
    CHECK(s->get_counts().replicas.at("L2") == 4);
    CHECK(s->integrity_check().empty());
    // Cloud_ack replicas below cloud_through can be pruned.
    CHECK(prune_sync(*s, protocol::now_ms() + 1).count == 4); // L1:1, L2:1..3
}

TEST_CASE("origin_summaries: own first, then by name; hwm, cloud_through, held") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    CHECK(s->origin_summaries().size() == 1); // the own origin row exists from the first open
    publish_n(*s, 3);
    REQUIRE(store_replicas_sync(*s, {replica("L3", 3, 1)}).ok);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 5), replica("L2", 2, 6)}, {{"L2", 5}}).ok);
    REQUIRE(origin_cloud_through_sync(*s, "L2", 5).count == 1);
    auto sums = s->origin_summaries();
    REQUIRE(sums.size() == 3);
    CHECK(sums[0].origin == "L1");
    CHECK(sums[0].own);
    CHECK(sums[0].hwm == 3);
    CHECK(sums[0].held == 3);
    CHECK(sums[0].cloud_through == 0);
    CHECK(sums[1].origin == "L2");
    CHECK_FALSE(sums[1].own);
    CHECK(sums[1].hwm == 6);
    CHECK(sums[1].cloud_through == 5);
    CHECK(sums[1].held == 2);
    CHECK(sums[1].to_upload == 1); // seq 5 is cloud_ack
    CHECK(sums[0].to_upload == 3);
    CHECK(sums[2].origin == "L3");
    CHECK(sums[2].held == 1);
    CHECK(sums[2].to_upload == 1);
    // Pruned messages are no longer held; the marks stay.
    REQUIRE(prune_sync(*s, protocol::now_ms() + 1).count == 1);
    CHECK(s->origin_summaries()[1].held == 1);
    CHECK(s->origin_summaries()[1].hwm == 6);
}

TEST_CASE("next_for_peer with include_peer_origin serves a rebuilding peer its own messages") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    publish_n(*s, 1);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)})
                .ok);
    // Without it the peer's own origin is never sent.
    auto plain = s->next_for_peer("L2", {{"L1", 1}, {"L2", 1}}, 100, 1u << 20, false);
    CHECK(plain.messages.empty());
    // The rebuilding L2 reported its mark L2:1: it gets L2:2 and L2:3 back, own messages first.
    auto b = s->next_for_peer("L2", {{"L2", 1}}, 100, 1u << 20, true);
    REQUIRE(b.messages.size() == 3);
    CHECK(b.messages[0].origin == "L1");
    CHECK(b.messages[1].origin == "L2");
    CHECK(b.messages[1].seq == 2);
    CHECK(b.messages[2].seq == 3);
    CHECK(b.floor.empty());
    // Pruned below the cursor: a floor names the first seq still held.
    REQUIRE(origin_cloud_through_sync(*s, "L2", 2).count == 2);
    REQUIRE(prune_sync(*s, protocol::now_ms() + 1).count == 2);
    auto f = s->next_for_peer("L2", {{"L1", 1}}, 100, 1u << 20, true);
    REQUIRE(f.messages.size() == 1);
    CHECK(f.messages[0].seq == 3);
    CHECK(f.floor == protocol::hwm_map{{"L2", 3}});
}
