// agent/retention: how often a lane prunes, and a cycle on a real outbox that deletes a large
// backlog in steps of at most batch_rows while the io thread stays free.

#include "agent/retention.hpp"

#include "agent_test_util.hpp"
#include "outbox/async.hpp"
#include "protocol/publish.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <future>

using namespace lanesync;
using namespace lanesync::agent;
using namespace lanesync::agent::test;

TEST_CASE("prune_every: a tenth of the retention, between a second and an hour") {
    using namespace std::chrono;
    CHECK(prune_every(hours(24 * 30)) == hours(1));
    CHECK(prune_every(hours(10)) == hours(1));
    CHECK(prune_every(minutes(50)) == minutes(5));
    CHECK(prune_every(milliseconds(86'400)) == milliseconds(8'640)); // 0.001 days
    CHECK(prune_every(milliseconds(8'640)) == seconds(1));
}

TEST_CASE("a retention cycle deletes a backlog in steps and counts it") {
    temp_dir dir;
    auto cfg = test_config(dir.path);
    cfg.retention = -std::chrono::hours(1); // cutoff an hour ahead: everything is past it
    auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id});
    std::vector<protocol::publish_request> reqs;
    for (int i = 0; i < 2'500; ++i)
        reqs.push_back(protocol::make_publish_request("transaction",
                                                      "{\"i\":" + std::to_string(i) + "}",
                                                      std::nullopt, std::nullopt)
                           .value());
    REQUIRE(outbox::publish_batch_sync(*store, std::move(reqs)).k == outbox::batch_outcome::stored);
    std::promise<outbox::count_outcome> acked;
    store->origin_cloud_through("L1", 2'500, [&](auto o) { acked.set_value(o); });
    REQUIRE(acked.get_future().get().count == 2'500);
    std::atomic<int> commits{0};
    store->set_commit_listener([&](const outbox::commit_info&) { ++commits; });

    auto& pruned = metrics::global().get_counter(
        "lanesync_outbox_pruned_total",
        "Messages deleted by retention (cloud_ack past OUTBOX_RETENTION_DAYS)");
    const auto before = pruned.value();
    net::io_context ioc(1);
    outbox::async_store as(ioc.get_executor(), *store);
    retention r(ioc, as, cfg, 1'000);
    r.start(0ms);
    // Watch from the io thread: every row deleted and counted, within a deadline.
    net::steady_timer watch(ioc);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::function<void()> check = [&] {
        if (pruned.value() - before >= 2'500 || std::chrono::steady_clock::now() > deadline) {
            r.stop();
            return;
        }
        watch.expires_after(10ms);
        watch.async_wait([&](auto) { check(); });
    };
    check();
    ioc.run();
    CHECK(store->get_counts().cloud_ack == 0);
    CHECK(pruned.value() - before == 2'500);
    CHECK(commits >= 3); // 1000 + 1000 + 500 in steps: three transactions at least
    CHECK(store->integrity_check().empty());
    store->close();
}
