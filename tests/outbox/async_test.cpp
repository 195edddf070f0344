// outbox::async_store: completions on the handler's executor (default, strand, coroutine),
// reads on the outbox's reader thread, work kept while pending, read failures, health().

#include "helpers.hpp"

#include "outbox/async.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;
namespace hooks = lanesync::outbox::detail::test_hooks;
namespace net = boost::asio;

namespace {

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// The io_context outlives the store: the store's writer and reader threads post completions
// into it up to the moment they are joined (ThreadSanitizer saw the io_context destroyed while
// the writer was still signalling it).
struct fixture {
    temp_dir dir;
    net::io_context ioc;
    std::unique_ptr<store> s = store::open(opts(dir.file("L1.db")));
    async_store as{ioc.get_executor(), *s};
};

} // namespace

TEST_CASE("a plain callback completes on the adapter's executor, never inline") {
    fixture f;
    const auto me = std::this_thread::get_id();
    bool published = false, got = false;
    std::string id;
    f.as.publish(req(), [&](publish_outcome o) {
        CHECK(std::this_thread::get_id() == me); // the thread running ioc, not the writer
        CHECK(f.ioc.get_executor().running_in_this_thread());
        REQUIRE(o.k == publish_outcome::created);
        id = o.rec.msg.id;
        published = true;
        f.as.get(id, [&](std::optional<record> r) {
            CHECK(std::this_thread::get_id() == me);
            REQUIRE(r);
            CHECK(r->msg.seq == 1);
            got = true;
        });
    });
    CHECK_FALSE(published); // not before the io_context runs it
    f.ioc.run();
    CHECK(published);
    CHECK(got);
}

TEST_CASE("a write refused at once (closed store) still completes through the executor") {
    fixture f;
    f.s->close();
    bool called = false;
    f.as.publish(req(), [&](publish_outcome o) {
        CHECK(o.k == publish_outcome::storage_failed);
        CHECK(o.error == "outbox closed");
        called = true;
    });
    CHECK_FALSE(called);
    f.ioc.run();
    CHECK(called);
}

TEST_CASE("bind_executor(strand, cb) completes on the strand") {
    fixture f;
    auto strand = net::make_strand(f.ioc);
    int done = 0;
    f.as.publish(req(), net::bind_executor(strand, [&](publish_outcome o) {
                     CHECK(strand.running_in_this_thread());
                     CHECK(o.k == publish_outcome::created);
                     ++done;
                 }));
    f.as.counts(net::bind_executor(strand, [&](outbox::counts) {
        CHECK(strand.running_in_this_thread());
        ++done;
    }));
    f.as.health(net::bind_executor(strand, [&](outbox::health h) {
        CHECK(strand.running_in_this_thread());
        CHECK(h.writable);
        ++done;
    }));
    f.ioc.run();
    CHECK(done == 3);
}

TEST_CASE("use_awaitable and as_tuple(use_awaitable) work for writes and reads") {
    fixture f;
    bool finished = false;
    // GCC 12: every awaitable is built into a named local before the co_await, so no
    // temporary lives inside a co_await expression (they would be destroyed twice).
    auto body = [&]() -> net::awaitable<void> {
        auto pub = f.as.publish(req(R"({"a":1})"), net::use_awaitable);
        auto o = co_await std::move(pub);
        REQUIRE(o.k == publish_outcome::created);
        CHECK(f.ioc.get_executor().running_in_this_thread());
        auto get = f.as.get(o.rec.msg.id, net::use_awaitable);
        auto got = co_await std::move(get);
        REQUIRE(got);
        CHECK(got->msg.data == R"({"a":1})");
        auto counts = f.as.counts(net::use_awaitable);
        auto c = co_await std::move(counts);
        CHECK(c.pending == 1);
        auto peer_marks = f.as.peer_marks(net::use_awaitable);
        auto marks = co_await std::move(peer_marks);
        CHECK(marks.empty());
        auto peer_acked = f.as.peer_acked("L2", 1, 1, net::use_awaitable);
        auto ack = co_await std::move(peer_acked);
        CHECK(ack.quorum_through == 1);
        auto next_for_peer = f.as.next_for_peer("L3", {}, 10, 1 << 20, net::use_awaitable);
        auto batch = co_await std::move(next_for_peer);
        CHECK(batch.messages.size() == 1);
        auto next_for_cloud = f.as.next_for_cloud(10, false, net::use_awaitable);
        auto up = co_await std::move(next_for_cloud);
        CHECK(up.size() == 1);
        auto list = f.as.list(state::peer_ack, 10, net::use_awaitable);
        auto listed = co_await std::move(list);
        CHECK(listed.size() == 1);
        auto hwm = f.as.hwm(net::use_awaitable);
        auto h = co_await std::move(hwm);
        CHECK(h.at("L1") == 1);
        auto summaries_op = f.as.origin_summaries(net::use_awaitable);
        auto summaries = co_await std::move(summaries_op);
        REQUIRE(summaries.size() == 1);
        CHECK(summaries[0].held == 1);
        auto incarnation_op = f.as.incarnation(net::use_awaitable);
        auto inc = co_await std::move(incarnation_op);
        CHECK(inc.size() == 32);
        auto begin_op = f.as.begin_rebuild("outbox lost", net::use_awaitable);
        auto begun = co_await std::move(begin_op);
        CHECK(begun.count == 1);
        auto state_op = f.as.get_rebuild_state(net::use_awaitable);
        auto rs = co_await std::move(state_op);
        CHECK(rs.active);
        CHECK(rs.reason == "outbox lost");
        auto restored_msgs = std::vector<protocol::message>{replica("L1", 1, 2)};
        auto restore_op =
            f.as.store_replicas(std::move(restored_msgs), {}, true, net::use_awaitable);
        auto restored = co_await std::move(restore_op);
        CHECK(restored.inserted == 1);
        auto finish_op = f.as.finish_rebuild({"L3"}, net::use_awaitable);
        auto finished_rb = co_await std::move(finish_op);
        CHECK(finished_rb.count == 1);
        auto state_after = f.as.get_rebuild_state(net::use_awaitable);
        auto rs2 = co_await std::move(state_after);
        CHECK_FALSE(rs2.active);
        CHECK(rs2.incarnation != inc);
        CHECK(rs2.excluded.at("L3") == 2);
        auto replicas_msgs = std::vector<protocol::message>{replica("L2", 2, 1)};
        auto replicas_op = f.as.store_replicas(std::move(replicas_msgs), {}, net::use_awaitable);
        auto stored = co_await std::move(replicas_op);
        CHECK(stored.inserted == 1);
        auto for_l2 = f.as.next_for_peer("L2", {{"L1", 2}}, 10, 1 << 20, true, net::use_awaitable);
        auto b2 = co_await std::move(for_l2);
        CHECK(b2.messages.size() == 1);
        auto cover_op = f.as.next_replicas_for_cloud({"L2"}, 10, net::use_awaitable);
        auto cover = co_await std::move(cover_op);
        CHECK(cover.size() == 1);
        auto read = f.as.read([](store& s) { return s.get_counts().peer_ack; },
                              net::as_tuple(net::use_awaitable));
        auto [e, n] = co_await std::move(read);
        CHECK_FALSE(e);
        CHECK(n == 1);
        auto health_op = f.as.health(net::use_awaitable);
        auto health = co_await std::move(health_op);
        CHECK(health.writable);
        auto failing = f.as.read([](store&) -> int { throw error("inside"); }, net::use_awaitable);
        bool thrown = false;
        try {
            co_await std::move(failing);
        } catch (const error& ex) {
            thrown = std::string(ex.what()) == "inside"; // use_awaitable rethrows
        }
        CHECK(thrown);
        finished = true;
    };
    net::co_spawn(f.ioc, body(), net::detached);
    f.ioc.run();
    CHECK(finished);
}

TEST_CASE("reads run on the reader thread, never on the calling or io thread") {
    fixture f;
    publish_n(*f.s, 3);
    const auto me = std::this_thread::get_id();
    std::set<std::thread::id> ran_on;
    int done = 0;
    for (int i = 0; i < 5; ++i)
        f.as.read(
            [](store& s) {
                return std::make_pair(std::this_thread::get_id(), s.get_counts().pending);
            },
            [&](std::exception_ptr e, std::pair<std::thread::id, std::uint64_t> r) {
                CHECK_FALSE(e);
                CHECK(std::this_thread::get_id() == me);
                CHECK(r.second == 3);
                ran_on.insert(r.first);
                ++done;
            });
    f.ioc.run();
    CHECK(done == 5);
    REQUIRE(ran_on.size() == 1); // one reader thread
    CHECK(*ran_on.begin() != me);
}

TEST_CASE("many concurrent reads from several io threads all complete with the right answer") {
    fixture f;
    auto recs = publish_n(*f.s, 20);
    std::atomic<int> ok{0};
    constexpr int n = 400;
    for (int i = 0; i < n; ++i) {
        const auto& rec = recs[static_cast<std::size_t>(i) % recs.size()];
        auto strand = net::make_strand(f.ioc);
        f.as.get(rec.msg.id, net::bind_executor(
                                 strand, [&, strand, seq = rec.msg.seq](std::optional<record> r) {
                                     CHECK(strand.running_in_this_thread());
                                     if (r && r->msg.seq == seq)
                                         ++ok;
                                 }));
    }
    std::vector<std::thread> io;
    for (int t = 0; t < 3; ++t)
        io.emplace_back([&] { f.ioc.run(); });
    for (auto& t : io)
        t.join();
    CHECK(ok == n);
}

TEST_CASE("the io_context does not run out of work while an operation is pending") {
    fixture f;
    hooks::pause_writer(*f.s, true);
    bool called = false;
    f.as.publish(req(), [&](publish_outcome o) {
        CHECK(o.k == publish_outcome::created);
        called = true;
    });
    f.ioc.run_for(std::chrono::milliseconds(30)); // without the work guard: returns at once
    CHECK_FALSE(f.ioc.stopped());
    CHECK_FALSE(called);
    hooks::pause_writer(*f.s, false);
    f.ioc.run();
    CHECK(called);
}

TEST_CASE("a failing read: read() hands over the exception, a named read an empty value") {
    fixture f;
    publish_n(*f.s, 1);
    bool seen = false, empty = false;
    f.as.read([](store&) -> int { throw error("boom"); },
              [&](std::exception_ptr e, int v) {
                  REQUIRE(e);
                  CHECK(v == 0);
                  try {
                      std::rethrow_exception(e);
                  } catch (const error& ex) {
                      CHECK(std::string(ex.what()) == "boom");
                  }
                  seen = true;
              });
    // A job that throws on the reader thread is logged; the reader goes on.
    f.s->post_read([] { throw std::runtime_error("job threw"); });
    f.as.counts([&](outbox::counts c) {
        CHECK(c.pending == 1); // the reader survived the throwing job
        empty = true;
    });
    f.ioc.run();
    CHECK(seen);
    CHECK(empty);
}

TEST_CASE("health: writable, closed, read-only; a disk-full group shows until a write succeeds") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    publish_n(*s, 1);
    auto h = s->health();
    CHECK(h.writable);
    CHECK(h.error.empty());
    CHECK(h.last_commit_at_ms);
    CHECK_FALSE(h.busy_since_ms);

    const std::string big = "{\"blob\":\"" + std::string(300'000, 'x') + "\"}";
    auto pages = std::stoll(hooks::exec_on_writer(*s, "PRAGMA page_count"));
    hooks::exec_on_writer(*s, "PRAGMA max_page_count=" + std::to_string(pages + 8));
    CHECK(publish_sync(*s, req(big)).k == publish_outcome::storage_failed);
    h = s->health();
    CHECK_FALSE(h.writable);
    CHECK(contains(h.error, "full"));
    CHECK(h.last_failure_at_ms);

    // Space comes back; health() queued an empty write, whose commit shows the recovery.
    hooks::exec_on_writer(*s, "PRAGMA max_page_count=1073741823");
    bool recovered = false;
    for (int i = 0; i < 500 && !recovered; ++i) {
        recovered = s->health().writable;
        if (!recovered)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK(recovered);

    s->close();
    h = s->health();
    CHECK_FALSE(h.writable);
    CHECK(h.error == "outbox closed");

    auto ro = store::open(opts(path, "L1", "store-1", true));
    h = ro->health();
    CHECK_FALSE(h.writable);
    CHECK(h.error == "outbox is read-only");
}

TEST_CASE("health never waits on the write lock") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    hooks::exec_on_writer(*s, "PRAGMA busy_timeout=2000");
    raw_db other(path);
    other.exec("BEGIN IMMEDIATE");
    std::promise<publish_outcome> p;
    auto fut = p.get_future();
    s->publish(req(), [&](publish_outcome o) { p.set_value(std::move(o)); });
    // The writer now waits up to 2 s for the lock; health answers at once all the same.
    auto start = std::chrono::steady_clock::now();
    auto h = s->health();
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200));
    CHECK(h.writable); // no group has failed yet
    other.exec("COMMIT");
    CHECK(fut.get().k == publish_outcome::created);
}
