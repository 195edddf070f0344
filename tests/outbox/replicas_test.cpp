// store_replicas() and next_for_peer(): contiguous prefix per origin, duplicates, gaps,
// conflicts, floors, own-origin copies.

#include "helpers.hpp"

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

TEST_CASE("replicas in order are stored; the same batch again counts as duplicates") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto r =
        store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)});
    CHECK(r.ok);
    CHECK(r.inserted == 3);
    CHECK(r.duplicates == 0);
    CHECK_FALSE(r.gap);
    CHECK(r.hwm == protocol::hwm_map{{"L1", 0}, {"L2", 3}});

    auto again = store_replicas_sync(*s, {replica("L2", 2, 2), replica("L2", 2, 3)});
    CHECK(again.ok);
    CHECK(again.inserted == 0);
    CHECK(again.duplicates == 2);

    auto got = s->get(uuid(2, 2));
    REQUIRE(got);
    CHECK(got->msg == replica("L2", 2, 2));
    CHECK_FALSE(got->own);
    CHECK(got->st == state::pending);
    auto c = s->get_counts();
    CHECK(c.replicas.at("L2") == 3);
    CHECK(c.pending == 0); // replicas are not part of the own outbox
    CHECK(s->integrity_check().empty());
}

TEST_CASE("a replica that does not extend the prefix is a gap and is not stored") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1)}).ok);
    auto r =
        store_replicas_sync(*s, {replica("L2", 2, 2), replica("L2", 2, 4), replica("L3", 3, 1)});
    CHECK(r.gap);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find("L2") != std::string::npos);
    CHECK(r.inserted == 2); // L2#2 and L3#1 are committed, L2#4 is not
    CHECK_FALSE(s->get(uuid(2, 4)));
    CHECK(r.hwm.at("L2") == 2);
    CHECK(r.hwm.at("L3") == 1);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("conflicting replicas are refused and not stored") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2)}).ok);

    SUBCASE("same id, other content") {
        auto r = store_replicas_sync(*s, {replica("L2", 2, 2, R"({"r":"other"})")});
        // Refused, named, and the batch is not ok: a link must not ack past an id conflict.
        CHECK_FALSE(r.ok);
        CHECK(r.conflict.find(uuid(2, 2)) != std::string::npos);
        CHECK(r.refused == 1);
        CHECK(s->get(uuid(2, 2))->msg.data == R"({"r":1})");
    }
    SUBCASE("same id used at another seq") {
        auto m = replica("L2", 2, 3);
        m.id = uuid(2, 1);
        auto r = store_replicas_sync(*s, {m});
        CHECK(r.refused == 1);
        CHECK_FALSE(r.ok);
        CHECK(r.conflict.find("L2:3 is already held as L2:1") != std::string::npos);
        CHECK(s->hwm().at("L2") == 2);
    }
    SUBCASE("same origin and seq, other id") {
        auto m = replica("L2", 2, 2);
        m.id = uuid(99, 2);
        auto r = store_replicas_sync(*s, {m});
        CHECK(r.refused == 1);
        CHECK(r.inserted == 0);
        CHECK_FALSE(s->get(uuid(99, 2)));
    }
    CHECK(s->get_counts().replicas.at("L2") == 2);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("copies of this lane's own messages are ignored") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto r = store_replicas_sync(*s, {replica("L1", 1, 1), replica("L2", 2, 1)}, {{"L1", 50}});
    CHECK(r.ok);
    CHECK(r.inserted == 1);
    CHECK(r.duplicates == 0);
    CHECK(r.refused == 0);
    CHECK_FALSE(s->get(uuid(1, 1)));
    CHECK(r.hwm.at("L1") == 0);
    CHECK(publish_sync(*s, req()).rec.msg.seq == 1);
}

TEST_CASE("a floor lets the prefix jump over messages pruned at the sender") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    // Without the floor, L4#11 is a gap.
    CHECK(store_replicas_sync(*s, {replica("L4", 4, 11)}).gap);
    auto r = store_replicas_sync(*s, {replica("L4", 4, 11), replica("L4", 4, 12)}, {{"L4", 11}});
    CHECK(r.ok);
    CHECK(r.inserted == 2);
    CHECK(r.hwm.at("L4") == 12);
    CHECK(s->cloud_through().at("L4") == 10);
    // A message below the floor that we never held counts as held (it is in the cloud).
    auto old = store_replicas_sync(*s, {replica("L4", 4, 5)});
    CHECK(old.ok);
    CHECK(old.duplicates == 1);
    CHECK_FALSE(s->get(uuid(4, 5)));

    // A floor over replicas held pending marks them cloud_ack.
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)})
                .ok);
    REQUIRE(store_replicas_sync(*s, {}, {{"L2", 3}}).ok);
    CHECK(s->get(uuid(2, 1))->st == state::cloud_ack);
    CHECK(s->get(uuid(2, 2))->st == state::cloud_ack);
    CHECK(s->get(uuid(2, 3))->st == state::pending);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("origin_cloud_through marks replicas cloud_ack, also ones stored later") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2), replica("L2", 2, 3)})
                .ok);
    auto r = origin_cloud_through_sync(*s, "L2", 2);
    CHECK(r.ok);
    CHECK(r.count == 2);
    CHECK(s->get(uuid(2, 2))->st == state::cloud_ack);
    CHECK(s->get(uuid(2, 2))->cloud_acked_at_ms);
    CHECK(s->get(uuid(2, 3))->st == state::pending);
    CHECK(origin_cloud_through_sync(*s, "L2", 1).count == 0); // never goes back
    CHECK(s->cloud_through().at("L2") == 2);

    CHECK(origin_cloud_through_sync(*s, "L5", 10).ok); // an origin we hold nothing of yet
    REQUIRE(store_replicas_sync(*s, {replica("L5", 5, 1)}).inserted == 1);
    CHECK(s->get(uuid(5, 1))->st == state::cloud_ack);

    // Own: never above the own hwm (nothing published here); the own rule is in cover_test.cpp.
    CHECK(origin_cloud_through_sync(*s, "L1", 10).count == 0);
    CHECK(s->cloud_through().at("L1") == 0);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("next_for_peer sends what the peer lacks, own messages first, never its own") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    publish_n(*s, 3);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2)}).ok);
    REQUIRE(store_replicas_sync(*s, {replica("L3", 3, 1)}).ok);

    auto b = s->next_for_peer("L2", {{"L1", 1}}, 100, 1u << 20);
    REQUIRE(b.messages.size() == 3);
    CHECK(b.messages[0].origin == "L1");
    CHECK(b.messages[0].seq == 2);
    CHECK(b.messages[1].seq == 3);
    CHECK(b.messages[2].origin == "L3");
    CHECK(b.floor.empty());

    auto nothing = s->next_for_peer("L3", {{"L1", 3}, {"L2", 2}}, 100, 1u << 20);
    CHECK(nothing.messages.empty());

    auto limited = s->next_for_peer("L9", {}, 2, 1u << 20);
    CHECK(limited.messages.size() == 2);
    auto one = s->next_for_peer("L9", {}, 100, 1); // always at least one
    CHECK(one.messages.size() == 1);
    auto sized = s->next_for_peer("L9", {}, 100, protocol::encoded_size(b.messages[0]) * 2);
    CHECK(sized.messages.size() == 2);
}

TEST_CASE("ids_at names the message held at each mark (protocol v2 tips)") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto own = publish_n(*s, 3);
    REQUIRE(own.size() == 3);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2)}).ok);
    auto ids = s->ids_at(s->hwm());
    CHECK(ids == protocol::tip_ids{{"L1", own[2].msg.id}, {"L2", uuid(2, 2)}});
    // One own seq; seq 0, a seq not held and an unknown origin get no id.
    CHECK(s->ids_at({{"L1", 2}}) == protocol::tip_ids{{"L1", own[1].msg.id}});
    CHECK(s->ids_at({{"L1", 0}, {"L2", 9}, {"L7", 1}}).empty());
}
