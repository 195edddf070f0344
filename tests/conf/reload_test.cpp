// Live reload's plan (conf/reload.hpp): which changed keys a running agent takes, which refuse
// the reload whole, and that applying copies the live keys only.
#include "conf/reload.hpp"
#include "conf_test_util.hpp"

#include <algorithm>
#include <map>

using namespace lanesync::conf;
using namespace lanesync::conf::test;
using namespace std::chrono_literals;

namespace {

using settings = std::map<std::string, std::string>;

const settings base = {{"TERMINAL_ID", "L1"},
                       {"TERMINAL_PORT", "9001"},
                       {"LOCAL_API_PORT", "10001"},
                       {"PEER_TERMINALS", "ws://10.0.0.2:9002"},
                       {"PEER_SECRET", "s3cret-one-long-enough"},
                       {"SUPABASE_URL", "http://127.0.0.1:54321"},
                       {"SUPABASE_SERVICE_KEY", "key-one-xxxxxxxxxxxx"}};

/// The base settings with `more` over them, loaded.
config with(const settings& more) {
    auto all = base;
    for (const auto& [k, v] : more)
        all[k] = v;
    std::string text;
    for (const auto& [k, v] : all)
        text += k + "=" + v + "\n";
    return ok(text).cfg;
}

reload_plan plan(const settings& running, const settings& next) {
    return plan_reload(with(running), with(next));
}

} // namespace

TEST_CASE("an unchanged file plans nothing") {
    auto p = plan({}, {});
    CHECK(p.ok());
    CHECK(p.changed.empty());
    CHECK_FALSE(p.log_level);
    CHECK_FALSE(p.uploader);
    CHECK(refusal_text(p).empty());
}

TEST_CASE("the same values written differently are no change") {
    auto p =
        plan({{"CLOUD_BATCH_SIZE", "50"}, {"LOG_LEVEL", "info"}}, {{"CLOUD_BATCH_SIZE", "\"50\""}});
    CHECK(p.ok());
    CHECK(p.changed.empty());
}

TEST_CASE("live keys are listed and routed to the part that takes them") {
    auto p = plan({}, {{"LOG_LEVEL", "debug"},
                       {"CLOUD_BATCH_SIZE", "200"},
                       {"SUPABASE_SERVICE_KEY", "key-two-xxxxxxxxxxxx"},
                       {"TOPIC_PRIORITY", "audit:low"},
                       {"OUTBOX_RETENTION_DAYS", "2"}});
    CHECK(p.ok());
    CHECK(p.changed == std::vector<std::string>{"SUPABASE_SERVICE_KEY", "CLOUD_BATCH_SIZE",
                                                "OUTBOX_RETENTION_DAYS", "TOPIC_PRIORITY",
                                                "LOG_LEVEL"});
    CHECK(p.log_level);
    CHECK(p.service_key);
    CHECK(p.uploader);
    CHECK_FALSE(p.puller);
    CHECK(p.retention);
}

TEST_CASE("backoff reaches both the uploader and the puller; the pull interval the puller") {
    auto p = plan({}, {{"SYNC_BACKOFF_MAX_MS", "5000"}});
    CHECK(p.uploader);
    CHECK(p.puller);
    auto q = plan({}, {{"CLOUD_PULL_INTERVAL_MS", "1000"}});
    CHECK(q.changed == std::vector<std::string>{"CLOUD_PULL_INTERVAL_MS"});
    CHECK(q.puller);
    CHECK_FALSE(q.uploader);
}

TEST_CASE("a key that cannot change live refuses the reload whole") {
    auto p = plan({}, {{"TERMINAL_PORT", "9005"}, {"LOG_LEVEL", "debug"}});
    CHECK_FALSE(p.ok());
    CHECK(p.refused == std::vector<std::string>{"TERMINAL_PORT"});
    CHECK(refusal_text(p) == "TERMINAL_PORT cannot change while the agent runs (restart it to "
                             "apply it); nothing was applied");
    auto q = plan({}, {{"TERMINAL_ID", "L9"}, {"OUTBOX_PATH", "/tmp/x.db"}});
    CHECK(q.refused == std::vector<std::string>{"TERMINAL_ID", "OUTBOX_PATH"});
    CHECK(refusal_text(q) == "TERMINAL_ID, OUTBOX_PATH cannot change while the agent runs "
                             "(restart it to apply them); nothing was applied");
}

TEST_CASE("peers, the peer secret and the cloud URL are not live yet") {
    CHECK(plan({}, {{"PEER_TERMINALS", "ws://10.0.0.2:9002,ws://10.0.0.3:9003"}}).refused ==
          std::vector<std::string>{"PEER_TERMINALS"});
    CHECK(plan({}, {{"PEER_SECRET", "s3cret-two-long-enough"}}).refused ==
          std::vector<std::string>{"PEER_SECRET"});
    CHECK(plan({}, {{"SUPABASE_URL", "http://127.0.0.1:54322"}}).refused ==
          std::vector<std::string>{"SUPABASE_URL"});
}

TEST_CASE("the pull interval to or from 0 is refused (it starts or stops the puller)") {
    auto p = plan({}, {{"CLOUD_PULL_INTERVAL_MS", "0"}});
    CHECK_FALSE(p.ok());
    CHECK(p.refused == std::vector<std::string>{"CLOUD_PULL_INTERVAL_MS (to or from 0)"});
}

TEST_CASE("a refusal never holds a secret value") {
    auto p = plan({}, {{"PEER_SECRET", "s3cret-two-long-enough"},
                       {"SUPABASE_SERVICE_KEY", "key-two-xxxxxxxxxxxx"}});
    auto text = refusal_text(p);
    CHECK(text.find("s3cret") == std::string::npos);
    CHECK(text.find("key-two") == std::string::npos);
}

TEST_CASE("apply_live copies the live keys and leaves the others") {
    auto running = with({});
    auto next = with({{"LOG_LEVEL", "debug"},
                      {"CLOUD_SYNC_INTERVAL_MS", "1000"},
                      {"TERMINAL_PORT", "9005"},
                      {"TOPIC_PRIORITY", "audit:low"}});
    apply_live(running, next);
    CHECK(running.log_level == "debug");
    CHECK(running.cloud_interval == 1000ms);
    CHECK(running.topic_priority.size() == 1);
    CHECK(running.terminal_port == 9001);
    auto left = plan_reload(running, next);
    CHECK(left.changed.empty());
    CHECK(left.refused == std::vector<std::string>{"TERMINAL_PORT"});
}

TEST_CASE("every key of the key table is compared") {
    CHECK(reload_key_names() == known_keys());
    for (const auto& k : live_keys())
        CHECK(std::count(known_keys().begin(), known_keys().end(), k) == 1);
}
