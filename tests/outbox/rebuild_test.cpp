// Lane rebuild in the outbox: the incarnation, the persisted rebuild state (begin / finish,
// trust caps), and restoring own messages from a peer (store_replicas with restore_own).

#include "helpers.hpp"

#include <mutex>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

namespace {

bool lower_hex(const std::string& s) {
    return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// An own message of L1 as a peer holds it (what a rebuilding L1 gets back).
protocol::message own_copy(std::uint64_t seq, const std::string& data = R"({"sale":1})") {
    auto m = replica("L1", 1, seq, data);
    m.topic = "transaction";
    return m;
}

} // namespace

TEST_CASE("every outbox file has an incarnation: 32 lowercase hex, kept across reopen") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    std::string first;
    {
        auto s = store::open(opts(path));
        first = s->incarnation();
        CHECK(first.size() == 32);
        CHECK(lower_hex(first));
        CHECK(s->get_rebuild_state().incarnation == first);
    }
    auto again = store::open(opts(path));
    CHECK(again->incarnation() == first);
    auto ro = store::open(opts(path, "L1", "store-1", true));
    CHECK(ro->incarnation() == first);

    temp_dir other;
    auto s2 = store::open(opts(other.file("L1.db")));
    CHECK(s2->incarnation() != first); // random per file
}

TEST_CASE("a current-schema file without an incarnation gets one on open (not read-only)") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    {
        raw_db db(path);
        db.exec("DELETE FROM meta WHERE key = 'incarnation'");
    }
    {
        auto ro = store::open(opts(path, "L1", "store-1", true));
        CHECK(ro->incarnation().empty()); // read-only cannot write one
    }
    auto s = store::open(opts(path));
    const auto inc = s->incarnation();
    CHECK(inc.size() == 32);
    CHECK(lower_hex(inc));
    raw_db db(path);
    CHECK(db.integer("SELECT COUNT(*) FROM meta WHERE key = 'incarnation'") == 1);
}

TEST_CASE("rebuild state is persisted; begin is a no-op while rebuilding") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    const auto before = protocol::now_ms();
    std::string inc;
    {
        auto s = store::open(opts(path));
        inc = s->incarnation();
        auto idle = s->get_rebuild_state();
        CHECK_FALSE(idle.active);
        CHECK(idle.reason.empty());
        CHECK(idle.since_ms == 0);
        CHECK(idle.excluded.empty());

        auto b = begin_rebuild_sync(*s, "peer holds seq 100 of L1 but this lane only 0");
        CHECK(b.ok);
        CHECK(b.count == 1);
        auto again = begin_rebuild_sync(*s, "another reason");
        CHECK(again.ok);
        CHECK(again.count == 0);
    }
    // A crash mid-rebuild resumes it: the state is in the file.
    auto s = store::open(opts(path));
    auto st = s->get_rebuild_state();
    CHECK(st.active);
    CHECK(st.reason == "peer holds seq 100 of L1 but this lane only 0");
    CHECK(st.since_ms >= before);
    CHECK(st.since_ms <= protocol::now_ms());
    CHECK(st.incarnation == inc); // a new one only when the rebuild finishes
    auto ro = store::open(opts(path, "L1", "store-1", true));
    CHECK(ro->get_rebuild_state().active);
    CHECK_FALSE(begin_rebuild_sync(*ro, "x").ok); // read-only
}

TEST_CASE("finish_rebuild: new incarnation, reason cleared, excluded peers capped at own hwm") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    const auto inc0 = s->incarnation();

    // Not rebuilding: nothing changes.
    auto none = finish_rebuild_sync(*s, {"L3"});
    CHECK(none.ok);
    CHECK(none.count == 0);
    CHECK(s->incarnation() == inc0);
    CHECK(s->get_rebuild_state().excluded.empty());

    REQUIRE(begin_rebuild_sync(*s, "outbox lost").count == 1);
    REQUIRE(restore_sync(*s, {own_copy(1), own_copy(2), own_copy(3)}).ok);
    auto f = finish_rebuild_sync(*s, {"L3", "L4"});
    CHECK(f.ok);
    CHECK(f.count == 1);
    auto st = s->get_rebuild_state();
    CHECK_FALSE(st.active);
    CHECK(st.reason.empty());
    CHECK(st.since_ms == 0);
    CHECK(st.incarnation.size() == 32);
    CHECK(lower_hex(st.incarnation));
    CHECK(st.incarnation != inc0);
    CHECK(st.excluded == std::map<std::string, std::uint64_t>{{"L3", 3}, {"L4", 3}});

    // A second rebuild later: L3 keeps its earlier (lower) cap, L5 gets the hwm of now.
    publish_n(*s, 2);
    REQUIRE(begin_rebuild_sync(*s, "again").count == 1);
    REQUIRE(finish_rebuild_sync(*s, {"L3", "L5"}).count == 1);
    s.reset();
    auto reopened = store::open(opts(path));
    auto st2 = reopened->get_rebuild_state();
    CHECK_FALSE(st2.active);
    CHECK(st2.incarnation != st.incarnation);
    CHECK(st2.excluded == std::map<std::string, std::uint64_t>{{"L3", 3}, {"L4", 3}, {"L5", 5}});

    // L4 proved it holds the new history: its cap goes, the others stay; lifting again is a no-op.
    CHECK(lift_trust_cap_sync(*reopened, "L4").count == 1);
    CHECK(lift_trust_cap_sync(*reopened, "L4").count == 0);
    CHECK(reopened->get_rebuild_state().excluded ==
          std::map<std::string, std::uint64_t>{{"L3", 3}, {"L5", 5}});
    CHECK(reopened->get_rebuild_state().incarnation == st2.incarnation);
}

TEST_CASE("restore: own messages from a peer become own rows; publish continues at hwm + 1") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    std::mutex mu;
    std::vector<commit_info> seen;
    s->set_commit_listener([&](const commit_info& ci) {
        std::lock_guard lk(mu);
        seen.push_back(ci);
    });
    const auto before = protocol::now_ms();
    auto r = restore_sync(*s, {own_copy(1), own_copy(2), replica("L2", 2, 1), own_copy(3)});
    CHECK(r.ok);
    CHECK(r.inserted == 4);
    CHECK(r.restored == 3); // the own ones (lanesync_rebuild_restored_total)
    CHECK(r.hwm == protocol::hwm_map{{"L1", 3}, {"L2", 1}});
    {
        std::lock_guard lk(mu);
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].new_own); // gossip sends them on to peers that lack them
        CHECK(seen[0].new_replicas);
    }

    auto rec = s->get(uuid(1, 2));
    REQUIRE(rec);
    CHECK(rec->own);
    CHECK(rec->st == state::pending);
    CHECK(rec->msg.created_at_ms == own_copy(2).created_at_ms); // kept
    CHECK(rec->stored_at_ms >= before);                         // now
    CHECK(rec->msg.topic == "transaction");
    CHECK_FALSE(rec->peer_acked_at_ms);

    auto c = s->get_counts();
    CHECK(c.pending == 3);
    CHECK(c.own_last_seq == 3);
    CHECK(c.replicas.at("L2") == 1);

    // The own seq sequence goes on from the restored hwm.
    auto p = publish_sync(*s, req());
    REQUIRE(p.k == publish_outcome::created);
    CHECK(p.rec.msg.seq == 4);
    CHECK(own_seqs(dir.file("L1.db")) == iota_seqs(1, 4));
    // Restored messages are ordinary own messages: peer acks promote them, the cloud sees them.
    CHECK(peer_acked_sync(*s, "L2", 4, 1).promoted_latency_ms.size() == 4);
    CHECK(s->next_for_cloud(10, false).size() == 4);
    // The idempotency key of a restored sale answers `existing` on a POS retry.
    auto retry = req(R"({"sale":1})", uuid(1, 1));
    CHECK(publish_sync(*s, retry).k == publish_outcome::existing);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("restore: duplicates, conflicts and gaps follow the replica rules") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(restore_sync(*s, {own_copy(1), own_copy(2)}).ok);

    auto dup = restore_sync(*s, {own_copy(1), own_copy(2)});
    CHECK(dup.ok);
    CHECK(dup.duplicates == 2);
    CHECK(dup.inserted == 0);

    SUBCASE("same seq, other id: refused") {
        auto other = own_copy(2);
        other.id = uuid(9, 2);
        auto r = restore_sync(*s, {other});
        CHECK(r.refused == 1);
        CHECK(r.inserted == 0);
        CHECK(s->get(uuid(1, 2))->msg.id == uuid(1, 2));
        CHECK_FALSE(s->get(uuid(9, 2)));
    }
    SUBCASE("same id, other content: a conflict that fails the batch") {
        auto r = restore_sync(*s, {own_copy(2, R"({"sale":"changed"})"), own_copy(3)});
        CHECK_FALSE(r.ok);
        CHECK(r.refused == 1);
        CHECK(r.conflict.find("L1:2") != std::string::npos);
        CHECK(s->get(uuid(1, 2))->msg.data == R"({"sale":1})");
    }
    SUBCASE("a gap is not stored; what came before it is") {
        auto r = restore_sync(*s, {own_copy(3), own_copy(5)});
        CHECK_FALSE(r.ok);
        CHECK(r.gap);
        CHECK(r.inserted == 1);
        CHECK(r.error.find("expected seq 4, got 5") != std::string::npos);
        CHECK(r.hwm.at("L1") == 3);
        CHECK(publish_sync(*s, req()).rec.msg.seq == 4);
    }
    SUBCASE("an own message published here first is the one kept") {
        // (the lane handed out seq 3 before the peer's copy of the old seq 3 arrived)
        REQUIRE(publish_sync(*s, req(R"({"new":1})")).rec.msg.seq == 3);
        auto r = restore_sync(*s, {own_copy(3)});
        CHECK(r.refused == 1);
        CHECK(s->get_counts().pending == 3);
    }
    CHECK(s->integrity_check().empty());
}

TEST_CASE("restore: without the flag own messages and own floors are ignored") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(begin_rebuild_sync(*s, "outbox lost").count == 1); // the flag decides, not the state
    auto r = store_replicas_sync(*s, {own_copy(1), own_copy(2)}, {{"L1", 1}});
    CHECK(r.ok);
    CHECK(r.inserted == 0);
    CHECK_FALSE(s->get(uuid(1, 1)));
    auto r2 = store_replicas_sync(*s, {own_copy(5)}, {{"L1", 5}});
    CHECK(r2.ok);
    CHECK(r2.hwm.at("L1") == 0);
    CHECK(s->cloud_through().at("L1") == 0);
    CHECK(publish_sync(*s, req()).rec.msg.seq == 1);
}

TEST_CASE("restore: an own-origin floor raises own hwm and cloud_through to floor - 1") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));

    SUBCASE("wiped lane: the peer pruned seqs 1..40 after they reached the cloud") {
        auto r = restore_sync(*s, {own_copy(41), own_copy(42)}, {{"L1", 41}});
        CHECK(r.ok);
        CHECK(r.inserted == 2);
        CHECK(r.hwm.at("L1") == 42);
        CHECK(s->cloud_through().at("L1") == 40);
        CHECK(s->get_counts().pending == 2);
        CHECK(publish_sync(*s, req()).rec.msg.seq == 43);
    }
    SUBCASE("old copy of the file: held pending messages below the floor become cloud_ack") {
        publish_n(*s, 3);
        REQUIRE(peer_acked_sync(*s, "L2", 1, 1).promoted_latency_ms.size() == 1);
        auto r = restore_sync(*s, {own_copy(6)}, {{"L1", 6}});
        CHECK(r.ok);
        CHECK(r.hwm.at("L1") == 6);
        CHECK(s->cloud_through().at("L1") == 5);
        auto c = s->get_counts();
        CHECK(c.cloud_ack == 3);
        CHECK(c.pending == 1);
        CHECK(s->get(uuid(1, 6))->st == state::pending);
        CHECK(publish_sync(*s, req()).rec.msg.seq == 7);
    }
    SUBCASE("a restored message below an earlier floor is a duplicate") {
        REQUIRE(restore_sync(*s, {}, {{"L1", 3}}).ok);
        auto r = restore_sync(*s, {own_copy(2), own_copy(3)});
        CHECK(r.ok);
        CHECK(r.duplicates == 1); // seq 2 is below the floor: in the cloud, pruned at the peer
        CHECK(r.inserted == 1);
        CHECK(s->get(uuid(1, 3))->st == state::pending);
    }
    CHECK(s->integrity_check().empty());
}
