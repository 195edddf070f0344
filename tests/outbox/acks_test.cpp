// peer_acked(), cloud_acked(), note_attempt(), retry(), prune(), next_for_cloud(), list().

#include "helpers.hpp"

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

TEST_CASE("peer_acked with quorum 1 promotes pending up to the peer's mark") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto recs = publish_n(*s, 5);
    auto r = peer_acked_sync(*s, "L2", 3, 1);
    CHECK(r.ok);
    CHECK(r.quorum_through == 3);
    CHECK(r.promoted_latency_ms.size() == 3);
    for (auto l : r.promoted_latency_ms)
        CHECK(l >= 0);
    CHECK(s->get(recs[2].msg.id)->st == state::peer_ack);
    CHECK(s->get(recs[2].msg.id)->peer_acked_at_ms);
    CHECK(s->get(recs[3].msg.id)->st == state::pending);
    auto c = s->get_counts();
    CHECK(c.peer_ack == 3);
    CHECK(c.pending == 2);
    CHECK(c.oldest_peer_ack_at_ms == s->get(recs[0].msg.id)->peer_acked_at_ms);
    CHECK(c.oldest_pending_stored_at_ms == recs[3].stored_at_ms);

    // A lower mark never lowers the stored one; promoting again is a no-op.
    auto lower = peer_acked_sync(*s, "L2", 1, 1);
    CHECK(lower.quorum_through == 3);
    CHECK(lower.promoted_latency_ms.empty());
    CHECK(s->peer_marks().at(0).acked_through == 3);

    // A mark beyond what this lane handed out is capped at the own hwm.
    auto beyond = peer_acked_sync(*s, "L2", 100, 1);
    CHECK(beyond.quorum_through == 5);
    CHECK(beyond.promoted_latency_ms.size() == 2);
    CHECK(s->get_counts().pending == 0);
}

TEST_CASE("peer_acked with quorum 2 waits for two distinct peers") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    publish_n(*s, 5);
    auto r1 = peer_acked_sync(*s, "L2", 5, 2);
    CHECK(r1.quorum_through == 0);
    CHECK(r1.promoted_latency_ms.empty());
    auto again = peer_acked_sync(*s, "L2", 5, 2); // the same peer twice is still one peer
    CHECK(again.quorum_through == 0);
    auto r2 = peer_acked_sync(*s, "L3", 2, 2);
    CHECK(r2.quorum_through == 2);
    CHECK(r2.promoted_latency_ms.size() == 2);
    auto r3 = peer_acked_sync(*s, "L4", 4, 2); // marks 5, 4, 2: two peers hold 4
    CHECK(r3.quorum_through == 4);
    CHECK(r3.promoted_latency_ms.size() == 2);
    auto c = s->get_counts();
    CHECK(c.peer_ack == 4);
    CHECK(c.pending == 1);
    CHECK(s->peer_marks().size() == 3);
}

TEST_CASE("cloud_acked: stored and duplicate -> cloud_ack, rejected -> failed") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto recs = publish_n(*s, 5);
    REQUIRE(peer_acked_sync(*s, "L2", 4, 1).ok);
    auto r = cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::stored),
                                   cloud(recs[1].msg.id, cloud_result::duplicate),
                                   cloud(recs[2].msg.id, cloud_result::rejected, "bad sku"),
                                   cloud(uuid(77, 1), cloud_result::stored)});
    CHECK(r.ok);
    CHECK(r.acked == 2);
    CHECK(r.failed == 1);
    CHECK(r.latency_ms.size() == 2);
    auto a = s->get(recs[0].msg.id);
    CHECK(a->st == state::cloud_ack);
    CHECK(a->cloud_acked_at_ms);
    auto f = s->get(recs[2].msg.id);
    CHECK(f->st == state::failed);
    CHECK(f->last_error == "bad sku");
    CHECK(s->cloud_through().at("L1") == 2);
    auto c = s->get_counts();
    CHECK(c.cloud_ack == 2);
    CHECK(c.failed == 1);
    CHECK(c.peer_ack == 1);
    CHECK(c.pending == 1);

    // Answers for messages already cloud_ack change nothing, not even a late "rejected".
    auto again = cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::stored),
                                       cloud(recs[1].msg.id, cloud_result::rejected, "late")});
    CHECK(again.acked == 0);
    CHECK(again.failed == 0);
    CHECK(s->get(recs[1].msg.id)->st == state::cloud_ack);

    // A pending message (single-lane store) can go to the cloud directly; latency from publish.
    auto direct = cloud_acked_sync(*s, {cloud(recs[4].msg.id, cloud_result::stored)});
    CHECK(direct.acked == 1);
    CHECK(s->get(recs[4].msg.id)->st == state::cloud_ack);
    CHECK(s->cloud_through().at("L1") == 2); // seq 3 failed, 4 peer_ack
    CHECK(s->integrity_check().empty());
}

TEST_CASE("note_attempt counts attempts; retry re-queues failed messages only") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto recs = publish_n(*s, 4);
    REQUIRE(peer_acked_sync(*s, "L2", 2, 1).ok);
    auto n = note_attempt_sync(*s, {recs[0].msg.id, recs[0].msg.id, uuid(9, 9)});
    CHECK(n.ok);
    CHECK(n.count == 2);
    CHECK(s->get(recs[0].msg.id)->attempts == 2);

    REQUIRE(cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::rejected, "x"),
                                  cloud(recs[2].msg.id, cloud_result::rejected, "y")})
                .failed == 2);
    CHECK(s->list(state::failed, 10).size() == 2);

    // A message that is not failed: no-op, not counted.
    auto none = retry_sync(*s, {recs[1].msg.id, uuid(9, 9)});
    CHECK(none.ok);
    CHECK(none.count == 0);
    CHECK(s->get(recs[1].msg.id)->st == state::peer_ack);

    auto one = retry_sync(*s, {recs[0].msg.id});
    CHECK(one.count == 1);
    auto back = s->get(recs[0].msg.id);
    CHECK(back->st == state::peer_ack); // it had been peer-acked
    CHECK(back->last_error.empty());
    CHECK(back->attempts == 2);

    auto all = retry_sync(*s, {});
    CHECK(all.count == 1);
    CHECK(s->get(recs[2].msg.id)->st == state::pending); // never peer-acked
    CHECK(retry_sync(*s, {}).count == 0);
    CHECK(s->get_counts().failed == 0);
}

TEST_CASE("next_for_cloud and list walk states in seq order") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto recs = publish_n(*s, 6);
    REQUIRE(peer_acked_sync(*s, "L2", 3, 1).ok);
    REQUIRE(cloud_acked_sync(*s, {cloud(recs[1].msg.id, cloud_result::rejected, "no")}).failed ==
            1);

    auto peer_only = s->next_for_cloud(10, false);
    REQUIRE(peer_only.size() == 2);
    CHECK(peer_only[0].msg.seq == 1);
    CHECK(peer_only[1].msg.seq == 3);
    auto with_pending = s->next_for_cloud(10, true);
    REQUIRE(with_pending.size() == 5);
    for (std::size_t i = 1; i < with_pending.size(); ++i)
        CHECK(with_pending[i - 1].msg.seq < with_pending[i].msg.seq);
    auto limited = s->next_for_cloud(3, true);
    REQUIRE(limited.size() == 3);
    CHECK(limited[2].msg.seq == 4);

    auto pend = s->list(state::pending, 2);
    REQUIRE(pend.size() == 2);
    CHECK(pend[0].msg.seq == 4);
    CHECK(s->list(state::failed, 10).at(0).last_error == "no");
    CHECK(s->list(state::cloud_ack, 10).empty());
}

TEST_CASE("next_for_cloud: critical first, then high, normal, low; seq order within a level") {
    using P = protocol::priority;
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    // seq:  1 low, 2 normal, 3 critical, 4 high, 5 low, 6 critical, 7 normal, 8 high
    const P levels[] = {P::low, P::normal,   P::critical, P::high,
                        P::low, P::critical, P::normal,   P::high};
    for (auto p : levels)
        REQUIRE(publish_sync(*s, req(R"({"n":1})", std::nullopt, "transaction", p)).k ==
                publish_outcome::created);
    auto seqs = [](const std::vector<record>& v) {
        std::vector<std::uint64_t> out;
        for (const auto& r : v)
            out.push_back(r.msg.seq);
        return out;
    };
    using V = std::vector<std::uint64_t>;
    CHECK(seqs(s->next_for_cloud(10, true)) == V{3, 6, 4, 8, 2, 7, 1, 5});
    CHECK(seqs(s->next_for_cloud(3, true)) == V{3, 6, 4});
    // peer_ack through 5: the peer_ack ones only, in the same order; with pending, both states
    // merged by seq within each level.
    REQUIRE(peer_acked_sync(*s, "L2", 5, 1).ok);
    CHECK(seqs(s->next_for_cloud(10, false)) == V{3, 4, 2, 1, 5});
    CHECK(seqs(s->next_for_cloud(10, true)) == V{3, 6, 4, 8, 2, 7, 1, 5});
    auto c = s->get_counts();
    CHECK(c.peer_ack_by_priority == std::array<std::uint64_t, 4>{1, 1, 1, 2});
    CHECK(c.pending_by_priority == std::array<std::uint64_t, 4>{1, 1, 1, 0});
    // cloud_ack leaves the backlog.
    auto crit = s->next_for_cloud(1, false);
    REQUIRE(cloud_acked_sync(*s, {cloud(crit.at(0).msg.id, cloud_result::stored)}).ok);
    CHECK(s->get_counts().peer_ack_by_priority == std::array<std::uint64_t, 4>{0, 1, 1, 2});
    CHECK(s->integrity_check().empty());
}

TEST_CASE("prune deletes only old cloud_ack prefixes; seq numbering survives") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    auto recs = publish_n(*s, 5);
    REQUIRE(peer_acked_sync(*s, "L2", 5, 1).ok);
    REQUIRE(cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::stored),
                                  cloud(recs[1].msg.id, cloud_result::stored),
                                  cloud(recs[2].msg.id, cloud_result::stored),
                                  cloud(recs[3].msg.id, cloud_result::rejected, "no"),
                                  cloud(recs[4].msg.id, cloud_result::stored)})
                .ok);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)})
                .ok);
    const auto future = protocol::now_ms() + 60'000;

    SUBCASE("nothing is old enough") {
        CHECK(prune_sync(*s, 0).count == 0);
    }

    SUBCASE("old cloud_ack below the first failed message go; failed, later and replicas stay") {
        auto r = prune_sync(*s, future);
        CHECK(r.ok);
        CHECK(r.count == 3);
        CHECK(own_seqs(path) == std::vector<std::int64_t>{4, 5});
        CHECK(s->get(recs[4].msg.id)->st == state::cloud_ack); // above a failed one: kept
        CHECK(s->get_counts().replicas.at("L2") == 3);         // not known to be in the cloud

        // The failed one reaches the cloud later: now the rest of the prefix can go.
        REQUIRE(retry_sync(*s, {recs[3].msg.id}).count == 1);
        REQUIRE(cloud_acked_sync(*s, {cloud(recs[3].msg.id, cloud_result::stored)}).acked == 1);
        CHECK(s->cloud_through().at("L1") == 5);
        CHECK(prune_sync(*s, future).count == 2);
        CHECK(own_seqs(path).empty());
        auto c = s->get_counts();
        CHECK(c.cloud_ack == 0);
        CHECK(c.own_last_seq == 5);
        CHECK(publish_sync(*s, req()).rec.msg.seq == 6); // never reused

        // Replicas go once known to be in the cloud, as a prefix.
        REQUIRE(origin_cloud_through_sync(*s, "L2", 2).count == 2);
        CHECK(prune_sync(*s, future).count == 2);
        CHECK(s->get_counts().replicas.at("L2") == 1);
        CHECK(s->get(uuid(2, 3)));

        // Peers that lack pruned messages get a floor (the first seq still held).
        auto b = s->next_for_peer("L3", {}, 100, 1u << 20);
        CHECK(b.floor == protocol::hwm_map{{"L1", 6}, {"L2", 3}});
        REQUIRE(b.messages.size() == 2);
        CHECK(b.messages[0].seq == 6);
        CHECK(b.messages[1].seq == 3);
        auto none_held = s->next_for_peer("L3", {{"L1", 6}}, 100, 1u << 20);
        CHECK(none_held.floor == protocol::hwm_map{{"L2", 3}});
        CHECK(s->integrity_check().empty());
    }
}

TEST_CASE("prune never deletes pending, peer_ack or failed own messages") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    auto recs = publish_n(*s, 3);
    REQUIRE(peer_acked_sync(*s, "L2", 2, 1).ok);
    REQUIRE(cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::rejected, "no")}).ok);
    CHECK(prune_sync(*s, protocol::now_ms() + 60'000).count == 0);
    CHECK(own_seqs(path) == iota_seqs(1, 3));
}

TEST_CASE("prune in steps deletes at most max_rows a call, lowest seqs first, origin by origin") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 7);
    REQUIRE(origin_cloud_through_sync(*s, "L1", 7).count == 7);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)})
                .ok);
    REQUIRE(origin_cloud_through_sync(*s, "L2", 3).count == 3);
    const auto future = protocol::now_ms() + 60'000;

    CHECK(prune_sync(*s, future, 0).count == 0);
    CHECK(prune_sync(*s, future, 3).count == 3);
    CHECK(own_seqs(path) == iota_seqs(4, 7));
    CHECK(s->integrity_check().empty());
    // The own origin's last four and then the first of L2's: a step may span origins.
    auto r = prune_sync(*s, future, 5);
    CHECK(r.ok);
    CHECK(r.count == 5);
    CHECK(own_seqs(path).empty());
    CHECK(s->get_counts().replicas.at("L2") == 2);
    CHECK_FALSE(s->get(uuid(2, 1)));
    CHECK(s->get(uuid(2, 2)));
    // Fewer than max_rows left: the last step says so by its count.
    CHECK(prune_sync(*s, future, 5).count == 2);
    CHECK(prune_sync(*s, future, 5).count == 0);
    CHECK(s->integrity_check().empty());
    CHECK(publish_sync(*s, req()).rec.msg.seq == 8); // never reused
}
