// Head office's data on the lane (schema 4): apply_catalog's one-transaction pages,
// apply-if-newer per key, snapshots (reset ... done) and the tombstone horizon.
#include "helpers.hpp"

#include "outbox/async.hpp"
#include "outbox/detail/queries.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <map>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

namespace {

protocol::catalog_change chg(const std::string& key, std::int64_t version,
                             const std::string& data = "", bool deleted = false) {
    protocol::catalog_change c;
    c.key = key;
    c.version = version;
    c.deleted = deleted;
    c.data = deleted ? "null" : (data.empty() ? "{\"v\":" + std::to_string(version) + "}" : data);
    c.changed_at_ms = 1'764'633'600'000 + version;
    return c;
}

protocol::catalog_page page(const std::string& scope, std::int64_t through,
                            std::vector<protocol::catalog_change> changes, bool done = true) {
    protocol::catalog_page p;
    p.scope = scope;
    p.through = through;
    p.head = through;
    p.done = done;
    p.changes = std::move(changes);
    return p;
}

catalog_outcome apply_sync(store& s, protocol::catalog_page p,
                           const std::string& source = "cloud") {
    return wait_for<catalog_outcome>(
        [&](auto done) { s.apply_catalog(std::move(p), source, done); });
}

/// Every row of a scope as key -> (version, deleted, data), tombstones included.
std::map<std::string, std::string> dump(store& s, const std::string& scope) {
    std::map<std::string, std::string> out;
    for (const auto& c : s.catalog_since(scope, 0, 100'000))
        out[c.key] = std::to_string(c.version) + (c.deleted ? " deleted" : " " + c.data);
    return out;
}

std::optional<protocol::catalog_scope_state> scope_of(store& s, const std::string& scope) {
    for (auto& st : s.catalog_scopes())
        if (st.scope == scope)
            return st;
    return std::nullopt;
}

} // namespace

TEST_CASE("a catch-up page applies its changes and advances through in one commit") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    std::atomic<int> announced{0};
    s->set_commit_listener([&](const commit_info& ci) { announced += ci.catalog_changed ? 1 : 0; });
    auto o = apply_sync(*s, page("prices", 130, {chg("sku-1", 125), chg("sku-2", 127)}));
    REQUIRE(o.ok);
    CHECK(o.applied == 2);
    CHECK(o.skipped == 0);
    CHECK(o.scope.through == 130);
    CHECK(o.scope.head == 130);
    CHECK(o.scope.keys == 2);
    CHECK(o.scope.source == "cloud");
    CHECK(o.scope.applied_at_ms > 0);
    auto got = s->catalog_get("prices", "sku-1");
    REQUIRE(got);
    CHECK(got->version == 125);
    CHECK(got->data == R"({"v":125})");
    CHECK(got->changed_at_ms == 1'764'633'600'125);
    CHECK_FALSE(s->catalog_get("prices", "sku-9"));
    CHECK_FALSE(s->catalog_get("products", "sku-1"));
    CHECK(announced == 1);

    // A page of skips only changes nothing worth announcing.
    auto again = apply_sync(*s, page("prices", 130, {chg("sku-1", 125)}));
    REQUIRE(again.ok);
    CHECK(again.skipped == 1);
    CHECK(announced == 1);
}

TEST_CASE("applying the same pages twice gives the same state (idempotent)") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    std::vector<protocol::catalog_page> pages = {
        page("prices", 10, {chg("a", 3), chg("b", 5), chg("a", 9)}),
        page("prices", 20, {chg("b", 12, "", true), chg("c", 20)}),
    };
    for (const auto& p : pages)
        REQUIRE(apply_sync(*s, p).ok);
    const auto first = dump(*s, "prices");
    const auto first_state = scope_of(*s, "prices");
    for (const auto& p : pages) {
        auto o = apply_sync(*s, p);
        REQUIRE(o.ok);
        CHECK(o.applied == 0);
    }
    CHECK(dump(*s, "prices") == first);
    REQUIRE(first_state);
    auto second_state = scope_of(*s, "prices");
    REQUIRE(second_state);
    CHECK(second_state->through == first_state->through);
    CHECK(second_state->keys == 2); // a and c; b is a tombstone
    CHECK(first.at("a") == R"(9 {"v":9})");
    CHECK(first.at("b") == "12 deleted");
}

TEST_CASE("out-of-order versions: only a newer version of a key wins") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(apply_sync(*s, page("prices", 50, {chg("a", 50)})).ok);
    // An older page arriving late (a slow peer): skipped, through does not fall.
    auto late = apply_sync(*s, page("prices", 40, {chg("a", 40), chg("b", 39)}), "L2");
    REQUIRE(late.ok);
    CHECK(late.applied == 1); // b is new
    CHECK(late.skipped == 1);
    CHECK(late.scope.through == 50);
    CHECK(s->catalog_get("prices", "a")->version == 50);
    // A delete older than the upsert held loses too; a newer one wins.
    REQUIRE(apply_sync(*s, page("prices", 50, {chg("a", 45, "", true)})).ok);
    CHECK_FALSE(s->catalog_get("prices", "a")->deleted);
    REQUIRE(apply_sync(*s, page("prices", 60, {chg("a", 60, "", true)})).ok);
    auto a = s->catalog_get("prices", "a");
    REQUIRE(a);
    CHECK(a->deleted);
    CHECK(a->data == "null");
    CHECK(scope_of(*s, "prices")->keys == 1);
}

TEST_CASE("a page that fails halfway leaves nothing: rows and cursor are one transaction") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(apply_sync(*s, page("prices", 10, {chg("a", 10)})).ok);
    // The third row of the next page makes SQLite fail after two rows were written.
    detail::test_hooks::exec_on_writer(
        *s, "CREATE TRIGGER boom BEFORE INSERT ON catalog "
            "WHEN NEW.key = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END");
    auto o = apply_sync(
        *s, page("prices", 30, {chg("a", 20), chg("b", 21), chg("boom", 22), chg("c", 23)}));
    CHECK_FALSE(o.ok);
    CHECK(o.error.find("boom") != std::string::npos);
    CHECK(s->catalog_get("prices", "a")->version == 10);
    CHECK_FALSE(s->catalog_get("prices", "b"));
    CHECK(scope_of(*s, "prices")->through == 10);
    CHECK(scope_of(*s, "prices")->keys == 1);
    // Reopened (a restart): the same state, the page can be applied again in full.
    s.reset();
    s = store::open(opts(dir.file("L1.db")));
    CHECK(scope_of(*s, "prices")->through == 10);
    detail::test_hooks::exec_on_writer(*s, "DROP TRIGGER boom");
    auto again = apply_sync(*s, page("prices", 30, {chg("a", 20), chg("b", 21), chg("boom", 22)}));
    REQUIRE(again.ok);
    CHECK(again.applied == 3);
    CHECK(again.scope.through == 30);
}

TEST_CASE("refused pages write nothing and say why") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto refused = [&](protocol::catalog_page p, const std::string& why) {
        auto o = apply_sync(*s, std::move(p));
        CHECK_FALSE(o.ok);
        CAPTURE(o.error);
        CHECK(o.error.find(why) != std::string::npos);
    };
    refused(page("Prices!", 1, {chg("a", 1)}), "invalid catalog scope");
    refused(page("prices", 1, {chg("", 1)}), "invalid catalog key");
    refused(page("prices", 1, {chg(std::string(257, 'k'), 1)}), "invalid catalog key");
    refused(page("prices", 5, {chg("a", 0)}), "version 0");
    refused(page("prices", 5, {chg("a", 9)}), "above the page's through 5");
    auto no_data = chg("a", 1);
    no_data.data = "null";
    refused(page("prices", 5, {no_data}), "without data");
    auto other = chg("a", 1);
    other.scope = "products";
    refused(page("prices", 5, {other}), "scope 'products'");
    auto cont = page("prices", 5, {chg("a", 1)});
    cont.continues_snapshot = true;
    refused(cont, "no snapshot");
    CHECK(s->catalog_scopes().empty());
}

TEST_CASE("a reset snapshot over pages replaces the scope: unseen keys are tombstoned") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    // The lane held a, b, c, d (through 20); in the cloud b and d were deleted and compacted.
    REQUIRE(apply_sync(*s, page("products", 20,
                                {chg("a", 1), chg("b", 2), chg("c", 3), chg("d", 4), chg("e", 20)}))
                .ok);
    std::atomic<int> announced{0};
    s->set_commit_listener([&](const commit_info& ci) { announced += ci.catalog_changed ? 1 : 0; });
    auto first = page("products", 0, {chg("a", 1), chg("c", 33)}, false);
    first.reset = true;
    first.resume = "tok-1";
    auto o1 = apply_sync(*s, first);
    REQUIRE(o1.ok);
    CHECK(o1.scope.snapshot_active);
    CHECK(o1.scope.resume == "tok-1");
    CHECK(o1.scope.through == 20);          // unchanged until the snapshot ends
    CHECK(s->catalog_get("products", "b")); // not deleted yet

    // A continuation from another source is refused; from the snapshot's source it goes on.
    auto from_peer = page("products", 0, {chg("f", 5)}, false);
    from_peer.continues_snapshot = true;
    CHECK_FALSE(apply_sync(*s, from_peer, "L2").ok);

    auto last = page("products", 40, {chg("e", 20), chg("g", 35)}, true);
    last.continues_snapshot = true;
    auto o2 = apply_sync(*s, last);
    REQUIRE(o2.ok);
    CHECK(o2.tombstoned == 2); // b and d
    CHECK_FALSE(o2.scope.snapshot_active);
    CHECK(o2.scope.resume.empty());
    CHECK(o2.scope.through == 40);
    CHECK(o2.scope.horizon == 40);
    CHECK(o2.scope.keys == 4); // a c e g
    auto b = s->catalog_get("products", "b");
    REQUIRE(b);
    CHECK(b->deleted);
    CHECK(b->version == 40);
    CHECK(s->catalog_get("products", "c")->version == 33);
    CHECK(announced == 2);
}

TEST_CASE("a snapshot keeps keys newer than its through and restarts on a new reset") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    // A catch-up from a peer applied x at 90 before the cloud's snapshot (as_of 50) ended.
    REQUIRE(apply_sync(*s, page("prices", 90, {chg("x", 90), chg("y", 10)}), "L2").ok);
    auto r1 = page("prices", 0, {chg("z", 5)}, false);
    r1.reset = true;
    r1.resume = "t1";
    REQUIRE(apply_sync(*s, r1).ok);
    // The resume token expired in the cloud: the snapshot starts over with another reset.
    auto r2 = page("prices", 0, {chg("w", 6)}, false);
    r2.reset = true;
    r2.resume = "t2";
    REQUIRE(apply_sync(*s, r2).ok);
    auto end = page("prices", 50, {}, true);
    end.continues_snapshot = true;
    auto o = apply_sync(*s, end);
    REQUIRE(o.ok);
    CHECK(o.tombstoned == 2);                            // y and z: not in the second run
    CHECK_FALSE(s->catalog_get("prices", "x")->deleted); // 90 > the snapshot's 50
    CHECK(s->catalog_get("prices", "z")->deleted);
    CHECK_FALSE(s->catalog_get("prices", "w")->deleted);
    CHECK(o.scope.through == 90); // never lowered
}

TEST_CASE("a one-page snapshot (reset and done) on an empty lane") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto p = page("customers", 7, {chg("c1", 3), chg("c2", 7)});
    p.reset = true;
    auto o = apply_sync(*s, p);
    REQUIRE(o.ok);
    CHECK(o.applied == 2);
    CHECK(o.tombstoned == 0);
    CHECK(o.scope.through == 7);
    CHECK_FALSE(o.scope.snapshot_active);
    REQUIRE(s->catalog_keys_after("customers", "", 10).size() == 2);
    CHECK(s->catalog_keys_after("customers", "c1", 10).at(0).key == "c2");
}

TEST_CASE("catalog_since and catalog_keys_after: version order, key order, limits") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(
        apply_sync(*s, page("prices", 9, {chg("k3", 4), chg("k1", 9), chg("k2", 6, "", true)})).ok);
    auto since = s->catalog_since("prices", 4, 10);
    REQUIRE(since.size() == 2);
    CHECK(since[0].key == "k2");
    CHECK(since[0].deleted);
    CHECK(since[1].key == "k1");
    CHECK(since[0].scope == "prices");
    CHECK(s->catalog_since("prices", 0, 1).size() == 1);
    auto keys = s->catalog_keys_after("prices", "", 10);
    REQUIRE(keys.size() == 2); // the tombstone k2 is left out
    CHECK(keys[0].key == "k1");
    CHECK(keys[1].key == "k3");
}

TEST_CASE("purge_catalog drops old tombstones and raises the horizon") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    REQUIRE(apply_sync(*s, page("prices", 8, {chg("a", 5, "", true), chg("b", 8)})).ok);
    auto none = wait_for<count_outcome>([&](auto done) { s->purge_catalog(0, done); });
    REQUIRE(none.ok);
    CHECK(none.count == 0);
    auto later = protocol::now_ms() + 1000;
    auto o = wait_for<count_outcome>([&](auto done) { s->purge_catalog(later, done); });
    REQUIRE(o.ok);
    CHECK(o.count == 1);
    CHECK_FALSE(s->catalog_get("prices", "a"));
    CHECK(s->catalog_get("prices", "b"));
    auto st = scope_of(*s, "prices");
    REQUIRE(st);
    CHECK(st->horizon == 5);
    CHECK(st->keys == 1);
}

TEST_CASE("keys counted by triggers match a real COUNT after mixed pages") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    auto s = store::open(opts(path));
    std::int64_t v = 0;
    for (int round = 0; round < 20; ++round) {
        std::vector<protocol::catalog_change> cs;
        for (int k = 0; k < 7; ++k) {
            ++v;
            cs.push_back(chg("k" + std::to_string((round * 3 + k) % 11), v, "", (v % 3) == 0));
        }
        REQUIRE(apply_sync(*s, page("prices", v, cs)).ok);
    }
    raw_db db(path);
    CHECK(static_cast<std::int64_t>(scope_of(*s, "prices")->keys) ==
          db.integer("SELECT COUNT(*) FROM catalog WHERE scope = 'prices' AND deleted = 0"));
}

TEST_CASE("catalog reads are index searches, not scans") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    store::open(opts(path)).reset();
    raw_db db(path);
    namespace q = lanesync::outbox::detail::sql;
    for (auto text : {q::catalog_get, q::catalog_since, q::catalog_keys_after, q::catalog_upsert,
                      q::catalog_mark, q::catalog_scope_row}) {
        CAPTURE(text);
        auto plan = db.rows("EXPLAIN QUERY PLAN " + std::string(text));
        for (const auto& row : plan) {
            CAPTURE(row.back());
            CHECK(row.back().find("SCAN catalog") == std::string::npos);
            CHECK(row.back().find("TEMP B-TREE") == std::string::npos);
        }
    }
}

TEST_CASE("async_store: apply_catalog and the catalog reads complete on the caller's executor") {
    temp_dir dir;
    // Before the store: the store (its writer thread, which posts completions here) goes first.
    boost::asio::io_context io;
    auto s = store::open(opts(dir.file("L1.db")));
    async_store as(io.get_executor(), *s);
    catalog_outcome got;
    std::vector<protocol::catalog_scope_state> scopes;
    std::optional<protocol::catalog_change> row;
    as.apply_catalog(page("prices", 3, {chg("a", 3)}), "cloud", [&](catalog_outcome o) {
        got = o;
        as.catalog_scopes([&](std::vector<protocol::catalog_scope_state> v) { scopes = v; });
        as.catalog_get("prices", "a",
                       [&](std::optional<protocol::catalog_change> c) { row = std::move(c); });
    });
    io.run();
    CHECK(got.ok);
    REQUIRE(scopes.size() == 1);
    CHECK(scopes[0].through == 3);
    REQUIRE(row);
    CHECK(row->version == 3);
}
