// publish(): seq assignment, idempotency, group commit, concurrency (threads and a second
// store on the same file), close/reopen, commit listener.

#include "helpers.hpp"

#include "outbox/detail/test_hooks.hpp"

#include <algorithm>
#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <thread>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;
namespace hooks = lanesync::outbox::detail::test_hooks;

TEST_CASE("publish assigns seq 1, 2, 3 without gaps and stores the record") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto before = protocol::now_ms();
    auto recs = publish_n(*s, 5);
    for (std::size_t i = 0; i < recs.size(); ++i) {
        CHECK(recs[i].msg.seq == i + 1);
        CHECK(recs[i].msg.origin == "L1");
        CHECK(recs[i].st == state::pending);
        CHECK(recs[i].own);
        CHECK(protocol::valid_uuid(recs[i].msg.id));
        CHECK(recs[i].msg.created_at_ms >= before);
        CHECK(recs[i].stored_at_ms == recs[i].msg.created_at_ms);
    }
    auto got = s->get(recs[2].msg.id);
    REQUIRE(got);
    CHECK(got->msg == recs[2].msg);
    CHECK(got->st == state::pending);
    CHECK(got->own);
    CHECK(got->attempts == 0);
    CHECK_FALSE(got->peer_acked_at_ms);
    auto c = s->get_counts();
    CHECK(c.pending == 5);
    CHECK(c.own_last_seq == 5);
    CHECK(c.oldest_pending_stored_at_ms == recs[0].stored_at_ms);
    CHECK(s->hwm().at("L1") == 5);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("publish with a known id: existing for the same topic and data, conflict otherwise") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    const std::string id = "0190F3A2-1111-7000-8000-000000000001"; // upper case: normalized
    auto first = publish_sync(*s, req(R"({"a":1})", id));
    REQUIRE(first.k == publish_outcome::created);
    CHECK(first.rec.msg.id == protocol::normalize_uuid(id));

    auto again = publish_sync(*s, req(R"({"a":1})", protocol::normalize_uuid(id)));
    CHECK(again.k == publish_outcome::existing);
    CHECK(again.rec.msg == first.rec.msg);

    auto other_data = publish_sync(*s, req(R"({"a":2})", id));
    CHECK(other_data.k == publish_outcome::conflict);
    CHECK(other_data.rec.msg.data == R"({"a":1})");
    auto other_topic = publish_sync(*s, req(R"({"a":1})", id, "stock"));
    CHECK(other_topic.k == publish_outcome::conflict);
    // Content is topic and data: another priority is the same message.
    auto other_prio =
        publish_sync(*s, req(R"({"a":1})", id, "transaction", protocol::priority::low));
    CHECK(other_prio.k == publish_outcome::existing);
    CHECK(other_prio.rec.msg.prio == protocol::priority::normal);

    // Nothing new was written; the next message gets seq 2.
    CHECK(s->get_counts().pending == 1);
    CHECK(publish_sync(*s, req()).rec.msg.seq == 2);
}

TEST_CASE("a group commit runs every queued request in one transaction and one listener call") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    std::mutex m;
    std::vector<commit_info> commits;
    s->set_commit_listener([&](const commit_info& ci) {
        std::lock_guard lk(m);
        commits.push_back(ci);
    });
    hooks::pause_writer(*s, true);
    std::vector<std::future<publish_outcome>> fs;
    for (int i = 0; i < 50; ++i) {
        auto p = std::make_shared<std::promise<publish_outcome>>();
        fs.push_back(p->get_future());
        s->publish(req("{\"i\":" + std::to_string(i) + "}"),
                   [p](publish_outcome o) { p->set_value(std::move(o)); });
    }
    hooks::pause_writer(*s, false);
    for (std::size_t i = 0; i < fs.size(); ++i) {
        auto o = fs[i].get();
        CHECK(o.k == publish_outcome::created);
        CHECK(o.rec.msg.seq == i + 1); // queue order is seq order
    }
    std::lock_guard lk(m);
    REQUIRE(commits.size() == 1);
    CHECK(commits[0].new_own);
    CHECK_FALSE(commits[0].new_replicas);
}

TEST_CASE("a request failing inside a group leaves no seq hole and does not abort the others") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 2);
    hooks::pause_writer(*s, true);
    std::vector<std::future<publish_outcome>> fs;
    for (int i = 0; i < 5; ++i) {
        auto r = req("{\"i\":" + std::to_string(i) + "}");
        if (i == 1 || i == 3)
            r.prio = static_cast<protocol::priority>(9); // violates CHECK(priority BETWEEN 0 AND 3)
        auto p = std::make_shared<std::promise<publish_outcome>>();
        fs.push_back(p->get_future());
        s->publish(std::move(r), [p](publish_outcome o) { p->set_value(std::move(o)); });
    }
    hooks::pause_writer(*s, false);
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 5; ++i) {
        auto o = fs[static_cast<std::size_t>(i)].get();
        if (i == 1 || i == 3) {
            CHECK(o.k == publish_outcome::storage_failed);
            CHECK(o.error.find("CHECK") != std::string::npos);
        } else {
            REQUIRE(o.k == publish_outcome::created);
            seqs.push_back(o.rec.msg.seq);
        }
    }
    CHECK(seqs == std::vector<std::uint64_t>{3, 4, 5});
    CHECK(own_seqs(path) == iota_seqs(1, 5));
    CHECK(publish_sync(*s, req()).rec.msg.seq == 6);
    CHECK(s->integrity_check().empty());
}

TEST_CASE(
    "1000 concurrent publishes from 8 threads get seq 1..1000 once, each reported after commit") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    constexpr int threads = 8, per_thread = 125;
    std::mutex m;
    std::vector<std::uint64_t> seqs;
    std::atomic<int> not_visible{0}, not_created{0};
    std::latch done(threads * per_thread);
    std::latch start(1);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            start.wait();
            for (int i = 0; i < per_thread; ++i)
                s->publish(req("{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}"),
                           [&](publish_outcome o) {
                               if (o.k != publish_outcome::created)
                                   ++not_created;
                               // The read connection sees only committed data.
                               else if (!s->get(o.rec.msg.id))
                                   ++not_visible;
                               {
                                   std::lock_guard lk(m);
                                   seqs.push_back(o.rec.msg.seq);
                               }
                               done.count_down();
                           });
        });
    start.count_down();
    done.wait();
    for (auto& t : ts)
        t.join();
    CHECK(not_created == 0);
    CHECK(not_visible == 0);
    std::sort(seqs.begin(), seqs.end());
    std::vector<std::uint64_t> want;
    for (std::uint64_t i = 1; i <= threads * per_thread; ++i)
        want.push_back(i);
    CHECK(seqs == want);
    CHECK(own_seqs(path) == iota_seqs(1, threads * per_thread));
    CHECK(s->get_counts().pending == threads * per_thread);
}

TEST_CASE("two stores on one file (agent + CLI) publishing concurrently never share a seq") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto agent = store::open(opts(path));
    auto cli = store::open(opts(path));
    constexpr int per_store = 300;
    std::latch start(1);
    auto run = [&](store& s, std::vector<std::uint64_t>& seqs) {
        start.wait();
        std::vector<std::future<publish_outcome>> fs;
        for (int i = 0; i < per_store; ++i) {
            auto p = std::make_shared<std::promise<publish_outcome>>();
            fs.push_back(p->get_future());
            s.publish(req("{\"i\":" + std::to_string(i) + "}"),
                      [p](publish_outcome o) { p->set_value(std::move(o)); });
        }
        for (auto& f : fs) {
            auto o = f.get();
            if (o.k == publish_outcome::created)
                seqs.push_back(o.rec.msg.seq);
        }
    };
    std::vector<std::uint64_t> a, b;
    std::thread ta([&] { run(*agent, a); });
    std::thread tb([&] { run(*cli, b); });
    start.count_down();
    ta.join();
    tb.join();
    CHECK(a.size() == per_store);
    CHECK(b.size() == per_store);
    std::vector<std::uint64_t> all(a);
    all.insert(all.end(), b.begin(), b.end());
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
    CHECK(all.front() == 1);
    CHECK(all.back() == 2 * per_store);
    CHECK(own_seqs(path) == iota_seqs(1, 2 * per_store));
    CHECK(agent->get_counts().pending == 2 * per_store);
    CHECK(agent->integrity_check().empty());
}

TEST_CASE("close drains the queue; later writes fail with 'outbox closed'; reads still work") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    hooks::pause_writer(*s, true); // close() drains even a paused writer
    std::atomic<int> created{0};
    for (int i = 0; i < 100; ++i)
        s->publish(req(), [&](publish_outcome o) { created += o.k == publish_outcome::created; });
    s->close();
    CHECK(created == 100);
    s->close(); // idempotent

    bool called = false;
    s->publish(req(), [&](publish_outcome o) {
        called = true;
        CHECK(o.k == publish_outcome::storage_failed);
        CHECK(o.error == "outbox closed");
    });
    CHECK(called); // answered at once on the caller's thread
    auto r = prune_sync(*s, 0);
    CHECK_FALSE(r.ok);
    CHECK(r.error == "outbox closed");
    CHECK(s->get_counts().pending == 100);
    CHECK_FALSE(s->writable());
}

TEST_CASE("reopening after close keeps messages, replicas, peer marks and seq") {
    temp_dir dir;
    const auto path = dir.file("lanes/deep/L1.db"); // parent folders are created
    std::string id;
    {
        auto s = store::open(opts(path));
        auto recs = publish_n(*s, 3);
        id = recs[1].msg.id;
        REQUIRE(store_replicas_sync(*s, {replica("L2", 2, 1), replica("L2", 2, 2)}).ok);
        REQUIRE(peer_acked_sync(*s, "L2", 2, 1).ok);
    } // destructor closes
    auto s = store::open(opts(path));
    auto c = s->get_counts();
    CHECK(c.peer_ack == 2);
    CHECK(c.pending == 1);
    CHECK(c.replicas.at("L2") == 2);
    CHECK(c.own_last_seq == 3);
    CHECK(s->get(id)->st == state::peer_ack);
    auto marks = s->peer_marks();
    REQUIRE(marks.size() == 1);
    CHECK(marks[0].terminal_id == "L2");
    CHECK(marks[0].acked_through == 2);
    CHECK(marks[0].last_ack_at_ms);
    CHECK(s->hwm() == protocol::hwm_map{{"L1", 3}, {"L2", 2}});
    CHECK(publish_sync(*s, req()).rec.msg.seq == 4);
}

TEST_CASE("the commit listener says what changed") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    std::mutex m;
    std::vector<commit_info> seen;
    s->set_commit_listener([&](const commit_info& ci) {
        std::lock_guard lk(m);
        seen.push_back(ci);
    });
    auto last = [&] {
        std::lock_guard lk(m);
        REQUIRE_FALSE(seen.empty());
        return seen.back();
    };
    auto recs = publish_n(*s, 2);
    CHECK(last().new_own);
    store_replicas_sync(*s, {replica("L2", 2, 1)});
    CHECK(last().new_replicas);
    CHECK_FALSE(last().new_own);
    peer_acked_sync(*s, "L2", 2, 1);
    CHECK(last().new_peer_ack);
    cloud_acked_sync(*s, {cloud(recs[0].msg.id, cloud_result::rejected, "bad")});
    CHECK_FALSE(last().new_peer_ack);
    retry_sync(*s, {});
    CHECK(last().requeued);
    CHECK(last().new_peer_ack); // it had been peer-acked: back to peer_ack, uploader has work
    // An idempotent publish changes nothing.
    publish_sync(*s, req(R"({"x":1})", recs[1].msg.id));
    CHECK_FALSE(last().new_own);
}
