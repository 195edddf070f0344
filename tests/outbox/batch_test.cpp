// publish_batch(): one transaction, all or nothing; states(): the state get() would show; the
// commit listener's new_cloud_state (what wakes the local API's waits for acks).

#include "helpers.hpp"

#include <mutex>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

TEST_CASE("publish_batch stores every message in order in one commit") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    const auto a = uuid(1, 100);
    REQUIRE(publish_sync(*s, req(R"({"a":1})", a)).k == publish_outcome::created);
    std::mutex m;
    std::vector<commit_info> commits;
    s->set_commit_listener([&](const commit_info& ci) {
        std::lock_guard lk(m);
        commits.push_back(ci);
    });
    auto o =
        publish_batch_sync(*s, {req(R"({"n":1})"), req(R"({"a":1})", a), req(R"({"n":2})"),
                                req(R"({"n":2})", uuid(1, 101)), req(R"({"n":2})", uuid(1, 101))});
    REQUIRE(o.k == batch_outcome::stored);
    REQUIRE(o.items.size() == 5);
    CHECK(o.items[0].k == publish_outcome::created);
    CHECK(o.items[0].rec.msg.seq == 2);
    CHECK(o.items[1].k == publish_outcome::existing); // accepted before, same content
    CHECK(o.items[1].rec.msg.seq == 1);
    CHECK(o.items[2].rec.msg.seq == 3);
    CHECK(o.items[3].rec.msg.seq == 4);
    CHECK(o.items[4].k == publish_outcome::existing); // the same id twice in one batch
    CHECK(o.items[4].rec.msg.seq == 4);
    CHECK(s->get_counts().pending == 4);
    std::lock_guard lk(m);
    REQUIRE(commits.size() == 1);
    CHECK(commits[0].new_own);
}

TEST_CASE("publish_batch with a conflict stores nothing and names it; seqs are not burnt") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    const auto a = uuid(1, 100);
    REQUIRE(publish_sync(*s, req(R"({"a":1})", a)).k == publish_outcome::created);
    auto o = publish_batch_sync(*s, {req(R"({"n":1})"), req(R"({"a":2})", a),
                                     req(R"({"n":3})", uuid(1, 7)), req(R"({"n":4})", uuid(1, 7))});
    REQUIRE(o.k == batch_outcome::conflict);
    REQUIRE(o.items.size() == 4);
    CHECK(o.items[0].k == publish_outcome::created); // what would have been
    CHECK(o.items[1].k == publish_outcome::conflict);
    CHECK(o.items[1].rec.msg.id == a);
    CHECK(o.items[3].k == publish_outcome::conflict); // other content than index 2
    CHECK(s->get_counts().pending == 1);
    CHECK_FALSE(s->get(uuid(1, 7)));
    auto next = publish_sync(*s, req(R"({"n":9})"));
    CHECK(next.rec.msg.seq == 2);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("states(): own copy first, then a replica, nullopt when not held") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto own = publish_n(*s, 2);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1)}).ok);
    peer_acked_sync(*s, "L2", 1, 1);
    auto sts = s->states({own[0].msg.id, own[1].msg.id, uuid(2, 1), uuid(9, 9)});
    REQUIRE(sts.size() == 4);
    CHECK(sts[0] == state::peer_ack);
    CHECK(sts[1] == state::pending);
    CHECK(sts[2] == state::pending); // the replica
    CHECK_FALSE(sts[3]);
    CHECK(s->states({}).empty());
}

TEST_CASE("cloud answers and cloud news set new_cloud_state for the commit listener") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto own = publish_n(*s, 3);
    std::mutex m;
    std::vector<commit_info> commits;
    s->set_commit_listener([&](const commit_info& ci) {
        std::lock_guard lk(m);
        commits.push_back(ci);
    });
    auto last = [&] {
        std::lock_guard lk(m);
        REQUIRE_FALSE(commits.empty());
        return commits.back();
    };
    peer_acked_sync(*s, "L2", 3, 1);
    CHECK(last().new_peer_ack);
    CHECK_FALSE(last().new_cloud_state);
    cloud_acked_sync(*s, {cloud(own[0].msg.id, cloud_result::stored)});
    CHECK(last().new_cloud_state);
    cloud_acked_sync(*s, {cloud(own[1].msg.id, cloud_result::rejected, "no")});
    CHECK(last().new_cloud_state);
    CHECK(s->states({own[1].msg.id})[0] == state::failed);
    note_attempt_sync(*s, {own[2].msg.id});
    CHECK_FALSE(last().new_cloud_state);
    origin_cloud_through_sync(*s, "L1", 3);
    CHECK(last().new_cloud_state);
    CHECK(s->states({own[2].msg.id})[0] == state::cloud_ack);
    origin_cloud_through_sync(*s, "L1", 3); // nothing changes: no wake
    CHECK_FALSE(last().new_cloud_state);
    // A replica floor makes held replicas cloud_ack: a wake too; a floor that marks none: none.
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2)}).ok);
    CHECK_FALSE(last().new_cloud_state);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 3)}, {{"L2", 3}}).ok);
    CHECK(last().new_cloud_state);
    CHECK(s->states({uuid(2, 1)})[0] == state::cloud_ack);
    REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 4)}, {{"L2", 3}}).ok);
    CHECK_FALSE(last().new_cloud_state);
}
