// Unit tests for protocol/catalog_sync.hpp: what a lane sends a peer of each scope, the pages
// it builds (paging, snapshots, limits), one page in flight per scope, the have entries and
// which received pages it applies.

#include "protocol/catalog_sync.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace lanesync::protocol;
using snap = catalog_have_entry::snapshot_state;

namespace {

catalog_scope_state state(std::int64_t through, std::int64_t horizon = 0, bool active = false) {
    catalog_scope_state s;
    s.scope = "prices";
    s.through = through;
    s.horizon = horizon;
    s.head = through;
    s.snapshot_active = active;
    return s;
}

catalog_have_entry peer(std::int64_t through, snap sn = snap::none) {
    return catalog_have_entry{"prices", through, 0, sn};
}

catalog_change row(const std::string& key, std::int64_t version, bool deleted = false) {
    catalog_change c;
    c.scope = "prices";
    c.key = key;
    c.version = version;
    c.deleted = deleted;
    c.data = deleted ? "null" : R"({"price_cents":1})";
    return c;
}

/// An in-memory scope: key -> latest row, read the way the outbox reads it.
struct fake_rows {
    std::map<std::string, catalog_change> rows;
    int since_reads = 0, key_reads = 0;
    catalog_reader reader() {
        return catalog_reader{
            [this](const std::string&, std::int64_t since, std::size_t limit) {
                ++since_reads;
                std::vector<catalog_change> out;
                for (const auto& [k, c] : rows)
                    if (c.version > since)
                        out.push_back(c);
                std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
                    return a.version < b.version;
                });
                if (out.size() > limit)
                    out.resize(limit);
                return out;
            },
            [this](const std::string&, const std::string& after, std::size_t limit) {
                ++key_reads;
                std::vector<catalog_change> out;
                for (const auto& [k, c] : rows)
                    if (k > after && !c.deleted && out.size() < limit)
                        out.push_back(c);
                return out;
            }};
    }
    void add(const std::string& key, std::int64_t version, bool deleted = false) {
        rows[key] = row(key, version, deleted);
    }
};

catalog_sync_limits small(std::size_t n) {
    catalog_sync_limits l;
    l.page_changes = n;
    return l;
}

} // namespace

TEST_SUITE("catalog_sync") {

    TEST_CASE("plan: changes since the peer's through, or nothing when it is not behind") {
        auto p = plan_scope(state(120), nullptr, nullptr);
        CHECK(p.kind == send_kind::changes);
        CHECK(p.since == 0);
        auto e = peer(100);
        p = plan_scope(state(120), &e, nullptr);
        CHECK(p.kind == send_kind::changes);
        CHECK(p.reason == send_reason::changes_since);
        CHECK(p.since == 100);
        e = peer(120);
        CHECK(plan_scope(state(120), &e, nullptr).reason == send_reason::up_to_date);
        e = peer(130);
        CHECK(plan_scope(state(120), &e, nullptr).kind == send_kind::nothing);
        CHECK(plan_scope(state(0), nullptr, nullptr).reason == send_reason::ours_empty);
    }

    TEST_CASE("plan: a snapshot from the start when the peer is below our horizon") {
        auto e = peer(40);
        auto p = plan_scope(state(120, 50), &e, nullptr);
        CHECK(p.kind == send_kind::snapshot);
        CHECK(p.reason == send_reason::below_horizon);
        CHECK(p.first);
        CHECK(p.snapshot == serving_snapshot{120, ""});
        // at the horizon its tombstones are all here: changes
        e = peer(50);
        CHECK(plan_scope(state(120, 50), &e, nullptr).kind == send_kind::changes);
        // a peer without the scope, and we compacted: snapshot
        CHECK(plan_scope(state(120, 50), nullptr, nullptr).kind == send_kind::snapshot);
    }

    TEST_CASE("plan: nothing while our scope is mid-snapshot or the peer's is someone else's") {
        auto e = peer(0);
        CHECK(plan_scope(state(120, 0, true), &e, nullptr).reason ==
              send_reason::ours_mid_snapshot);
        e = peer(0, snap::busy);
        CHECK(plan_scope(state(120), &e, nullptr).reason == send_reason::peer_busy);
        e = peer(0, snap::yours);
        serving_snapshot at{110, "k9"};
        CHECK(plan_scope(state(120, 0, true), &e, &at).reason == send_reason::ours_mid_snapshot);
    }

    TEST_CASE("plan: continue the snapshot we serve, or restart it when we lost our place") {
        auto e = peer(0, snap::yours);
        serving_snapshot at{110, "k9"};
        auto p = plan_scope(state(120), &e, &at);
        CHECK(p.reason == send_reason::continue_snapshot);
        CHECK_FALSE(p.first);
        CHECK(p.snapshot == at);
        p = plan_scope(state(120), &e, nullptr);
        CHECK(p.reason == send_reason::restart_snapshot);
        CHECK(p.first);
        CHECK(p.snapshot == serving_snapshot{120, ""});
        // a cursor without the peer saying "yours" is not used
        auto plain = peer(115);
        CHECK(plan_scope(state(120), &plain, &at).kind == send_kind::changes);
    }

    TEST_CASE("serve: one page of changes, through and done when it is the last") {
        fake_rows f;
        f.add("a", 101);
        f.add("b", 105, true);
        f.add("c", 90);
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), {});
        REQUIRE(p);
        CHECK(p->since == 100);
        CHECK(p->page.through == 120);
        CHECK(p->page.done);
        CHECK_FALSE(p->page.reset);
        CHECK(p->page.head == 120);
        REQUIRE(p->page.changes.size() == 2);
        CHECK(p->page.changes[0].key == "a");
        CHECK(p->page.changes[1].deleted); // tombstones travel in catch-ups
        CHECK_FALSE(p->next);
    }

    TEST_CASE("serve: an empty page still moves the peer's through") {
        fake_rows f;
        f.add("a", 90);
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), {});
        REQUIRE(p);
        CHECK(p->page.changes.empty());
        CHECK(p->page.through == 120);
        CHECK(p->page.done);
    }

    TEST_CASE("serve: paging by version; a run of one version is never cut") {
        fake_rows f;
        f.add("a", 101);
        f.add("b", 102);
        f.add("c", 103);
        f.add("d", 103); // tombstones of a snapshot's end share one version
        f.add("e", 104);
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), small(4));
        REQUIRE(p);
        CHECK(p->page.changes.size() == 4); // the page ends between two versions
        CHECK(p->page.through == 103);
        p = serve_scope(state(120), &e, nullptr, f.reader(), small(3));
        REQUIRE(p->page.changes.size() == 2); // a, b: the 103 run goes next
        CHECK(p->page.through == 102);
        CHECK_FALSE(p->page.done);
        e = peer(102);
        p = serve_scope(state(120), &e, nullptr, f.reader(), small(3));
        REQUIRE(p->page.changes.size() == 3);
        CHECK(p->page.through == 120);
        CHECK(p->page.done);
    }

    TEST_CASE("serve: a full page of one version becomes a snapshot") {
        fake_rows f;
        f.add("a", 103);
        f.add("b", 103);
        f.add("c", 103, true);
        f.add("d", 90);
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), small(2));
        REQUIRE(p);
        CHECK(p->reason == send_reason::same_version_run);
        CHECK(p->page.reset);
        CHECK(p->page.through == 120);
        CHECK(p->since == 0);
        REQUIRE(p->page.changes.size() == 2); // live rows only, key order
        CHECK(p->page.changes[1].key == "b");
        CHECK_FALSE(p->page.done); // d follows
        REQUIRE(p->next);
        CHECK(*p->next == serving_snapshot{120, "b"});
    }

    TEST_CASE("serve: rows above our through (from a snapshot) wait until it covers them") {
        fake_rows f;
        f.add("a", 101);
        f.add("b", 150); // newer than our through (a cloud snapshot row)
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), small(1));
        REQUIRE(p);
        REQUIRE(p->page.changes.size() == 1);
        CHECK(p->page.changes[0].key == "a");
        CHECK(p->page.through == 120);
        CHECK(p->page.done);
        e = peer(120);
        CHECK_FALSE(serve_scope(state(120), &e, nullptr, f.reader(), {}));
        p = serve_scope(state(150), &e, nullptr, f.reader(), {});
        REQUIRE(p->page.changes.size() == 1);
        CHECK(p->page.changes[0].key == "b");
    }

    TEST_CASE("serve: a snapshot in key order, reset first, continues after, done last") {
        fake_rows f;
        for (int i = 0; i < 5; ++i)
            f.add("k" + std::to_string(i), 10 + i, i == 2);
        auto e = peer(3);
        auto p = serve_scope(state(120, 50), &e, nullptr, f.reader(), small(2));
        REQUIRE(p);
        CHECK(p->page.reset);
        CHECK_FALSE(p->page.continues_snapshot);
        CHECK(p->page.through == 120);
        CHECK(p->page.changes.size() == 2);
        REQUIRE(p->next);
        CHECK(p->next->after_key == "k1");
        auto yours = peer(3, snap::yours);
        p = serve_scope(state(125, 50), &yours, &*p->next, f.reader(), small(2));
        CHECK(p->page.continues_snapshot);
        CHECK(p->page.through == 120); // as_of stays
        REQUIRE(p->page.changes.size() == 2);
        CHECK(p->page.changes[0].key == "k3"); // k2 is a tombstone
        CHECK(p->page.done);                   // nothing after k4
        CHECK_FALSE(p->next);
        // no live row at all: one empty reset page, done
        fake_rows none;
        p = serve_scope(state(120, 50), &e, nullptr, none.reader(), small(2));
        CHECK(p->page.reset);
        CHECK(p->page.done);
        CHECK(p->page.changes.empty());
    }

    TEST_CASE("serve: pages stop growing past the byte cap, one change at least") {
        fake_rows f;
        for (int i = 0; i < 10; ++i)
            f.add("k" + std::to_string(i), 101 + i);
        catalog_sync_limits lim;
        lim.page_bytes = 250; // about two changes
        auto e = peer(100);
        auto p = serve_scope(state(120), &e, nullptr, f.reader(), lim);
        REQUIRE(p);
        CHECK(p->page.changes.size() == 2);
        CHECK(p->page.through == 102);
        CHECK_FALSE(p->page.done);
        lim.page_bytes = 1;
        p = serve_scope(state(120), &e, nullptr, f.reader(), lim);
        CHECK(p->page.changes.size() == 1);
    }

    TEST_CASE("sender: no job before the peer's have; one page per scope until acked") {
        catalog_sender s;
        s.on_local_change();
        CHECK_FALSE(s.take_job());
        CHECK(s.on_have(catalog_have_frame{0, {peer(100)}}));
        auto job = s.take_job();
        REQUIRE(job);
        CHECK_FALSE(s.take_job()); // one job at a time
        fake_rows f;
        f.add("a", 101);
        auto pages = serve_job(*job, {state(120)}, f.reader(), {});
        REQUIRE(pages.size() == 1);
        auto frames = s.on_served(std::move(pages));
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].n == 1);
        CHECK(frames[0].since == 100);
        CHECK(s.in_flight() == 1);
        // a have that does not ack it: the scope is skipped
        s.on_have(catalog_have_frame{0, {peer(100)}});
        job = s.take_job();
        REQUIRE(job);
        CHECK(job->in_flight.contains("prices"));
        CHECK(serve_job(*job, {state(120)}, f.reader(), {}).empty());
        CHECK(s.on_served({}).empty());
        // the ack
        s.on_have(catalog_have_frame{1, {peer(120)}});
        CHECK(s.in_flight() == 0);
        job = s.take_job();
        REQUIRE(job);
        CHECK(serve_job(*job, {state(120)}, f.reader(), {}).empty()); // up to date
    }

    TEST_CASE("sender: a have while the job is out runs another job after it") {
        catalog_sender s;
        s.on_have(catalog_have_frame{0, {}});
        auto job = s.take_job();
        REQUIRE(job);
        CHECK_FALSE(s.on_have(catalog_have_frame{0, {peer(5)}})); // job out: not now
        s.on_served({});
        CHECK(s.take_job());
    }

    TEST_CASE("sender: snapshot cursors are kept between pages and dropped when not ours") {
        catalog_sender s;
        s.on_have(catalog_have_frame{0, {peer(0)}});
        fake_rows f;
        for (int i = 0; i < 3; ++i)
            f.add("k" + std::to_string(i), 10 + i);
        auto pages = serve_job(*s.take_job(), {state(120, 50)}, f.reader(), small(2));
        auto frames = s.on_served(std::move(pages));
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].page.reset);
        s.on_have(catalog_have_frame{1, {peer(0, snap::yours)}});
        auto job = s.take_job();
        REQUIRE(job->serving.count("prices"));
        frames = s.on_served(serve_job(*job, {state(120, 50)}, f.reader(), small(2)));
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].n == 2);
        CHECK(frames[0].page.continues_snapshot);
        CHECK(frames[0].page.done);
        // the peer's cloud took the scope over: "busy" drops our place
        s.on_have(catalog_have_frame{2, {peer(0, snap::busy)}});
        CHECK(s.take_job()->serving.empty());
    }

    TEST_CASE("have entries: yours for this session's or an orphaned snapshot, busy else") {
        std::vector<catalog_scope_state> ours{state(10), state(0, 0, true), state(0, 0, true),
                                              state(0, 0, true)};
        ours[1].scope = "a";
        ours[2].scope = "b";
        ours[3].scope = "c";
        auto e = have_entries(ours, [](const std::string& s) {
            return s == "a"   ? snapshot_owner::this_session
                   : s == "b" ? snapshot_owner::orphan
                              : snapshot_owner::cloud;
        });
        REQUIRE(e.size() == 4);
        CHECK(e[0] == catalog_have_entry{"prices", 10, 0, snap::none});
        CHECK(e[1].snapshot == snap::yours);
        CHECK(e[2].snapshot == snap::yours);
        CHECK(e[3].snapshot == snap::busy);
    }

    TEST_CASE("accept: catch-up pages that continue what we hold") {
        auto ours = state(100);
        catalog_frame f{1, 100, {}};
        f.page.scope = "prices";
        f.page.through = 130;
        CHECK(accept_page(&ours, snapshot_owner::none, f) == page_verdict::apply);
        CHECK(accept_page(nullptr, snapshot_owner::none, catalog_frame{1, 0, f.page}) ==
              page_verdict::apply);
        f.since = 90; // overlaps: fine (apply-if-newer)
        CHECK(accept_page(&ours, snapshot_owner::none, f) == page_verdict::apply);
        f.since = 110; // above our through: a gap
        CHECK(accept_page(&ours, snapshot_owner::none, f) == page_verdict::ignore_gap);
        f.since = 50;
        f.page.through = 100; // nothing new
        CHECK(accept_page(&ours, snapshot_owner::none, f) == page_verdict::ignore_stale);
        auto busy = state(100, 0, true);
        f.page.through = 130;
        CHECK(accept_page(&busy, snapshot_owner::this_session, f) == page_verdict::ignore_busy);
        CHECK(to_string(page_verdict::ignore_gap) == std::string("gap"));
    }

    TEST_CASE("accept: snapshot pages only from the source of our snapshot") {
        catalog_frame reset{1, 0, {}};
        reset.page.scope = "prices";
        reset.page.reset = true;
        reset.page.through = 120;
        auto idle = state(10);
        CHECK(accept_page(&idle, snapshot_owner::none, reset) == page_verdict::apply);
        auto ahead = state(120);
        CHECK(accept_page(&ahead, snapshot_owner::none, reset) == page_verdict::ignore_stale);
        auto active = state(10, 0, true);
        CHECK(accept_page(&active, snapshot_owner::this_session, reset) == page_verdict::apply);
        CHECK(accept_page(&active, snapshot_owner::orphan, reset) == page_verdict::apply);
        CHECK(accept_page(&active, snapshot_owner::cloud, reset) == page_verdict::ignore_busy);
        CHECK(accept_page(&active, snapshot_owner::other_session, reset) ==
              page_verdict::ignore_busy);
        auto cont = reset;
        cont.page.reset = false;
        cont.page.continues_snapshot = true;
        CHECK(accept_page(&active, snapshot_owner::this_session, cont) == page_verdict::apply);
        CHECK(accept_page(&active, snapshot_owner::cloud, cont) ==
              page_verdict::ignore_not_continuing);
        CHECK(accept_page(&active, snapshot_owner::orphan, cont) ==
              page_verdict::ignore_not_continuing);
        CHECK(accept_page(&idle, snapshot_owner::none, cont) ==
              page_verdict::ignore_not_continuing);
    }

} // TEST_SUITE
