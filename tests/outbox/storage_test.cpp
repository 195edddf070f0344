// Opening, identity binding, schema versions, read-only mode, storage failures (SQLITE_FULL,
// SQLITE_BUSY), query plans, trigger-maintained counts, integrity checks.

#include "helpers.hpp"

#include "outbox/detail/queries.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <map>
#include <random>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;
namespace hooks = lanesync::outbox::detail::test_hooks;

namespace {

std::string open_error(const options& o) {
    try {
        store::open(o);
    } catch (const outbox::error& e) {
        return e.what();
    }
    return {};
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("a file is bound to its terminal and store on first open") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    auto other_lane = open_error(opts(path, "L2"));
    CHECK(contains(other_lane, "belongs to terminal 'L1'"));
    CHECK(contains(other_lane, "OUTBOX_PATH"));
    CHECK(contains(open_error(opts(path, "L1", "store-2")), "belongs to store 'store-1'"));
    CHECK(open_error(opts(path)).empty());
    CHECK(contains(open_error(opts(path, "bad id!")), "invalid terminal id"));
}

TEST_CASE("a database newer than the code is refused") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    {
        raw_db db(path);
        db.exec("PRAGMA user_version=99");
    }
    auto e = open_error(opts(path));
    CHECK(contains(e, "schema version 99"));
    CHECK(contains(e, "newer"));
    CHECK(contains(open_error(opts(path, "L1", "store-1", true)), "newer"));
}

TEST_CASE("a file that is not a database gives a clear error") {
    temp_dir dir;
    const auto path = dir.file("junk.db");
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        std::fputs("this is not sqlite, just some text long enough to look like a header....", f);
        std::fclose(f);
    }
    CHECK(contains(open_error(opts(path)), "not a database"));
}

TEST_CASE("read-only mode reads a stopped agent's file and refuses writes") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    CHECK(contains(open_error(opts(path, "L1", "store-1", true)), "does not exist"));
    std::string id;
    {
        auto s = store::open(opts(path));
        id = publish_n(*s, 3)[0].msg.id;
    } // the last connection closes: SQLite checkpoints and removes -wal and -shm

    auto ro = store::open(opts(path, "L1", "store-1", true));
    CHECK(ro->get_counts().pending == 3);
    CHECK(ro->get(id));
    CHECK(ro->hwm().at("L1") == 3);
    CHECK(ro->integrity_check().empty());
    CHECK_FALSE(ro->writable());
    auto p = publish_sync(*ro, req());
    CHECK(p.k == publish_outcome::storage_failed);
    CHECK(p.error == "outbox is read-only");
    CHECK(contains(retry_sync(*ro, {}).error, "read-only"));
    CHECK(contains(open_error(opts(path, "L2", "store-1", true)), "belongs to terminal"));

    // While the agent runs, the read-only view follows its commits.
    auto agent = store::open(opts(path));
    CHECK_FALSE(ro->changed_elsewhere());
    publish_n(*agent, 2);
    CHECK(ro->changed_elsewhere());
    CHECK_FALSE(ro->changed_elsewhere());
    CHECK(ro->get_counts().pending == 5);
    ro->close(); // no writer: nothing to do
}

TEST_CASE("changed_elsewhere reports commits of another connection, not our own") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto agent = store::open(opts(path));
    auto cli = store::open(opts(path));
    CHECK_FALSE(agent->changed_elsewhere());
    publish_n(*agent, 2);
    CHECK_FALSE(agent->changed_elsewhere());
    publish_n(*cli, 1);
    CHECK(agent->changed_elsewhere());
    CHECK_FALSE(agent->changed_elsewhere());
    CHECK(agent->get_counts().pending == 3);
}

TEST_CASE("a full disk fails only what did not fit; nothing half-written; works again later") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 3);
    const std::string big = "{\"blob\":\"" + std::string(300'000, 'x') + "\"}";

    // Cap the file a few pages above its current size: SQLite then returns SQLITE_FULL.
    auto pages = std::stoll(hooks::exec_on_writer(*s, "PRAGMA page_count"));
    hooks::exec_on_writer(*s, "PRAGMA max_page_count=" + std::to_string(pages + 8));

    SUBCASE("one big request in a group of small ones") {
        hooks::pause_writer(*s, true);
        std::vector<std::future<publish_outcome>> fs;
        for (int i = 0; i < 3; ++i) {
            auto p = std::make_shared<std::promise<publish_outcome>>();
            fs.push_back(p->get_future());
            s->publish(req(i == 1 ? big : "{\"small\":" + std::to_string(i) + "}"),
                       [p](publish_outcome o) { p->set_value(std::move(o)); });
        }
        hooks::pause_writer(*s, false);
        auto a = fs[0].get(), b = fs[1].get(), c = fs[2].get();
        CHECK(b.k == publish_outcome::storage_failed);
        CHECK(contains(b.error, "full"));
        // SQLite undid only the failed statement, so the small ones committed, without a hole.
        REQUIRE(a.k == publish_outcome::created);
        REQUIRE(c.k == publish_outcome::created);
        CHECK(a.rec.msg.seq == 4);
        CHECK(c.rec.msg.seq == 5);
    }
    SUBCASE("a group where nothing fits") {
        for (int i = 0; i < 2; ++i) {
            auto o = publish_sync(*s, req(big));
            CHECK(o.k == publish_outcome::storage_failed);
            CHECK(contains(o.error, "full"));
        }
        auto r = store_replicas_sync(*s, {replica("L2", 2, 1, big)});
        CHECK_FALSE(r.ok);
        CHECK(contains(r.error, "full"));
        CHECK(r.inserted == 0);
    }

    CHECK(s->integrity_check().empty());
    auto held = own_seqs(path);
    CHECK(held == iota_seqs(1, static_cast<std::int64_t>(held.size())));
    CHECK(s->get_counts().pending == held.size());

    // Space comes back: the same store keeps working, seq continues without a hole.
    hooks::exec_on_writer(*s, "PRAGMA max_page_count=1073741823");
    auto o = publish_sync(*s, req(big));
    REQUIRE(o.k == publish_outcome::created);
    CHECK(o.rec.msg.seq == held.size() + 1);
    CHECK(store_replicas_sync(*s, {replica("L2", 2, 1, big)}).inserted == 1);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("a write lock held elsewhere past the busy timeout fails the group, then recovers") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 1);
    hooks::exec_on_writer(*s, "PRAGMA busy_timeout=50");
    raw_db other(path);
    other.exec("BEGIN IMMEDIATE");
    auto failed = publish_sync(*s, req());
    CHECK(failed.k == publish_outcome::storage_failed);
    CHECK(contains(failed.error, "locked"));
    CHECK_FALSE(peer_acked_sync(*s, "L2", 1, 1).ok);
    CHECK_FALSE(s->writable());
    other.exec("COMMIT");
    CHECK(s->writable());
    auto ok = publish_sync(*s, req());
    REQUIRE(ok.k == publish_outcome::created);
    CHECK(ok.rec.msg.seq == 2);
}

TEST_CASE("hot queries are index range scans, never a full SCAN of messages") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    raw_db db(path);
    namespace q = lanesync::outbox::detail::sql;
    const std::map<std::string, std::string_view> queries = {
        {"get own", q::get_by_id_origin},
        {"get replica", q::get_by_id},
        {"state own", q::state_by_id_origin},
        {"state replica", q::state_by_id},
        {"list / next_for_cloud", q::by_state},
        {"next_for_peer", q::after_seq},
        {"oldest pending / peer_ack", q::oldest_in_state},
        {"seq taken", q::id_at_seq},
        {"first seq in state", q::first_seq_in_state},
        {"promote", q::promote_to_peer_ack},
        {"cloud ack", q::cloud_ack_one},
        {"cloud reject", q::cloud_reject_one},
        {"note attempt", q::note_attempt},
        {"retry one", q::retry_one},
        {"retry all", q::retry_all},
        {"replicas in cloud", q::replicas_cloud_acked},
        {"prune own", q::first_young_own},
        {"prune replica", q::first_young_replica},
        {"prune delete", q::delete_prefix},
        {"own in cloud", q::own_cloud_acked},
        {"replicas for cloud", q::pending_by_priority},
        {"next_for_cloud by priority", q::by_state_priority},
    };
    for (const auto& [name, text] : queries) {
        CAPTURE(name);
        auto plan = db.rows("EXPLAIN QUERY PLAN " + std::string(text));
        bool searched = false;
        for (const auto& row : plan) {
            const auto& detail = row.back();
            CAPTURE(detail);
            CHECK_FALSE(contains(detail, "SCAN messages"));
            CHECK_FALSE(contains(detail, "TEMP B-TREE"));
            searched |= contains(detail, "SEARCH messages");
        }
        CHECK(searched);
    }
}

TEST_CASE("counts kept by triggers match a real COUNT after a random workload") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    std::mt19937 rng(12345);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    std::map<std::string, std::uint64_t> next_seq = {{"L2", 1}, {"L3", 1}};
    std::vector<std::string> own_ids;

    auto check_counts = [&] {
        raw_db db(path);
        auto c = s->get_counts();
        auto n = [&](const std::string& where) {
            return static_cast<std::uint64_t>(
                db.integer("SELECT COUNT(*) FROM messages WHERE " + where));
        };
        CHECK(c.pending == n("origin = 'L1' AND state = 0"));
        CHECK(c.peer_ack == n("origin = 'L1' AND state = 1"));
        CHECK(c.cloud_ack == n("origin = 'L1' AND state = 2"));
        CHECK(c.failed == n("origin = 'L1' AND state = 3"));
        for (const auto& o : {std::string("L2"), std::string("L3")})
            CHECK(c.replicas[o] == n("origin = '" + o + "'"));
        for (int level = 0; level < 4; ++level) {
            auto at = static_cast<std::size_t>(level);
            auto p = " AND priority = " + std::to_string(level);
            CHECK(c.pending_by_priority[at] == n("origin = 'L1' AND state = 0" + p));
            CHECK(c.peer_ack_by_priority[at] == n("origin = 'L1' AND state = 1" + p));
        }
        CHECK(s->integrity_check().empty());
    };

    for (int step = 0; step < 400; ++step) {
        switch (pick(10)) {
        case 0: {
            auto recs = publish_n(*s, 1 + pick(5));
            for (auto& r : recs)
                own_ids.push_back(r.msg.id);
            break;
        }
        case 1: { // every priority level, so backlog_counts sees them all
            auto o = publish_sync(*s, req(R"({"p":1})", std::nullopt, "transaction",
                                          static_cast<protocol::priority>(pick(4))));
            REQUIRE(o.k == publish_outcome::created);
            own_ids.push_back(o.rec.msg.id);
            break;
        }
        case 2: {
            auto origin = pick(2) ? std::string("L2") : std::string("L3");
            unsigned lane = origin == "L2" ? 2 : 3;
            std::vector<protocol::message> batch;
            auto from =
                next_seq[origin] - (next_seq[origin] > 2 ? static_cast<std::uint64_t>(pick(2)) : 0);
            for (int i = 0, k = 1 + pick(4); i < k; ++i)
                batch.push_back(replica(origin, lane, from + static_cast<std::uint64_t>(i)));
            auto r = store_replicas_sync(*s, batch);
            REQUIRE(r.ok);
            next_seq[origin] = r.hwm.at(origin) + 1;
            break;
        }
        case 3:
            peer_acked_sync(*s, pick(2) ? "L2" : "L3",
                            static_cast<std::uint64_t>(own_ids.size()) / 2 +
                                static_cast<std::uint64_t>(pick(5)),
                            1 + static_cast<std::size_t>(pick(2)));
            break;
        case 4: {
            std::vector<cloud_result> res;
            for (int i = 0, k = pick(6); i < k && !own_ids.empty(); ++i)
                res.push_back(
                    cloud(own_ids[static_cast<std::size_t>(pick(static_cast<int>(own_ids.size())))],
                          static_cast<cloud_result::kind>(pick(3)), "why"));
            REQUIRE(cloud_acked_sync(*s, res).ok);
            break;
        }
        case 5:
            retry_sync(*s, {});
            break;
        case 6:
            REQUIRE(prune_sync(*s, protocol::now_ms() + 1000).ok);
            break;
        case 7: {
            auto origin = pick(2) ? std::string("L2") : std::string("L3");
            origin_cloud_through_sync(*s, origin, next_seq[origin] / 2);
            break;
        }
        case 8: { // cloud answers for replicas uploaded on their origin's behalf
            auto origin = pick(2) ? std::string("L2") : std::string("L3");
            unsigned lane = origin == "L2" ? 2 : 3;
            std::vector<cloud_result> res;
            for (int i = 0, k = pick(6); i < k && next_seq[origin] > 1; ++i) {
                auto seq =
                    1 + static_cast<std::uint64_t>(pick(static_cast<int>(next_seq[origin] - 1)));
                auto r = cloud(uuid(lane, seq), static_cast<cloud_result::kind>(pick(3)), "why");
                r.origin = origin;
                res.push_back(std::move(r));
            }
            REQUIRE(cloud_acked_sync(*s, res).ok);
            break;
        }
        case 9: // a peer says the cloud holds own messages up to here
            REQUIRE(origin_cloud_through_sync(*s, "L1",
                                              static_cast<std::uint64_t>(own_ids.size()) / 2 +
                                                  static_cast<std::uint64_t>(pick(5)))
                        .ok);
            break;
        }
        if (step % 50 == 0)
            check_counts();
    }
    check_counts();
}

TEST_CASE("integrity_check reports a counts table out of step and a seq gap") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 3);
    CHECK(s->integrity_check().empty());
    {
        raw_db db(path);
        db.exec("UPDATE counts SET n = n + 5 WHERE origin = 'L1' AND state = 0");
        db.exec("DELETE FROM messages WHERE origin = 'L1' AND seq = 2");
    }
    auto problems = s->integrity_check();
    bool counts_reported = false, gap_reported = false;
    for (const auto& p : problems) {
        counts_reported |= contains(p, "counts");
        gap_reported |= contains(p, "gap");
    }
    CHECK(counts_reported);
    CHECK(gap_reported);
}

TEST_CASE("writable probes the write lock") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    CHECK(s->writable());
    s->close();
    CHECK_FALSE(s->writable());
}
