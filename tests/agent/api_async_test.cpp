// The local API never waits on the outbox's write lock on its io thread: reads run on the
// outbox reader thread and /healthz answers from the health snapshot (issue 8, item 3).
#include "agent_test_util.hpp"

#include "outbox/detail/test_hooks.hpp"

#include <sqlite3.h>

using namespace lanesync::agent::test;
namespace hooks = lanesync::outbox::detail::test_hooks;

namespace {

/// Holds SQLite's write lock on `path` from another connection while alive.
struct write_lock_holder {
    sqlite3* db = nullptr;
    explicit write_lock_holder(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    ~write_lock_holder() {
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        sqlite3_close_v2(db);
    }
};

std::string publish_body(int n) {
    return json{{"topic", "t"}, {"data", {{"n", n}}}}.dump();
}

} // namespace

TEST_SUITE("api_async") {
    TEST_CASE("while the writer waits for a lock held elsewhere, reads and /healthz answer") {
        api_fixture f;
        auto first = once(f.port(), post("/v1/messages", publish_body(1)));
        REQUIRE(first.result_int() == 201);
        auto id = body_json(first)["id"].get<std::string>();

        hooks::exec_on_writer(*f.store, "PRAGMA busy_timeout=3000");
        std::optional<write_lock_holder> lock;
        lock.emplace(f.cfg.outbox_path);
        // A publish now waits in the writer for the lock (up to 3 s), on its own connection.
        std::thread publisher([&] {
            auto r = once(f.port(), post("/v1/messages", publish_body(2)));
            CHECK(r.result_int() == 201);
        });

        auto start = std::chrono::steady_clock::now();
        CHECK(once(f.port(), get("/healthz")).result_int() == 200);
        auto got = once(f.port(), get("/v1/messages/" + id));
        CHECK(got.result_int() == 200);
        CHECK(body_json(got)["seq"] == 1);
        CHECK(once(f.port(), get("/v1/messages?state=pending")).result_int() == 200);
        CHECK(once(f.port(), get("/v1/status")).result_int() == 200);
        CHECK(once(f.port(), get("/metrics")).result_int() == 200);
        // The old /healthz probe alone waited up to 1 s for the write lock.
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(900));

        lock.reset();
        publisher.join();
        CHECK(f.total() == 2);
    }

    TEST_CASE("/healthz says why after a failed commit, and recovers") {
        api_fixture f;
        REQUIRE(once(f.port(), post("/v1/messages", publish_body(1))).result_int() == 201);
        hooks::exec_on_writer(*f.store, "PRAGMA busy_timeout=50");
        {
            write_lock_holder lock(f.cfg.outbox_path);
            CHECK(once(f.port(), post("/v1/messages", publish_body(2))).result_int() == 503);
            auto h = once(f.port(), get("/healthz"));
            CHECK(h.result_int() == 503);
            CHECK(body_json(h)["error"] == "outbox is not writable");
            CHECK(contains(body_json(h)["reason"].get<std::string>(), "locked"));
        }
        // The lock is gone: the empty write queued by the failed snapshot commits.
        bool ok = false;
        for (int i = 0; i < 200 && !ok; ++i) {
            ok = once(f.port(), get("/healthz")).result_int() == 200;
            if (!ok)
                std::this_thread::sleep_for(10ms);
        }
        CHECK(ok);
    }
}
