// The commands that open the lane's outbox file themselves (with or without a running agent):
// `publish`, `retry`, `prune` and `check-db`.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "agent/views.hpp"
#include "base/tuning.hpp"
#include "protocol/message.hpp"
#include "protocol/publish.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

namespace lanesync::agent::cli {

namespace {

struct publish_options {
    std::string env, topic, data;
    std::optional<std::string> id, priority, wait;
    std::optional<std::int64_t> timeout_ms;
};

/// --wait/--timeout-ms, before anything is stored: empty when fine, else why not (exit 2).
std::string check_wait_options(const publish_options& o, const conf::config& cfg) {
    if (o.timeout_ms && !o.wait)
        return "--timeout-ms needs --wait peer_ack or --wait cloud_ack";
    if (o.wait == "peer_ack" && cfg.peers.empty())
        return "--wait peer_ack needs peers: PEER_TERMINALS is empty, so this lane uploads "
               "pending messages directly; use --wait cloud_ack";
    return {};
}

/// --wait: asks the running agent to long-poll the stored message (GET /v1/messages/{id}?wait=)
/// and prints it with the state it reached. 0 when it reached the state, 1 otherwise (the
/// message is stored either way).
int wait_for_ack(const conf::config& cfg, outbox::record rec, const std::string& wait,
                 std::int64_t timeout_ms) {
    const auto target = "/v1/messages/" + rec.msg.id + "?wait=" + wait +
                        "&timeout_ms=" + std::to_string(timeout_ms);
    auto r = local_http(cfg.local_api_port, "GET", target,
                        std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(5));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status == 0 || !j.is_object()) {
        std::cout << publish_json(rec).dump() << "\n";
        std::cerr << "error: stored, but cannot wait for " << wait
                  << ": the agent does not answer on " << agent_address(cfg)
                  << (r.error.empty() ? "" : " (" + r.error + ")") << "\n";
        return exit_failure;
    }
    if (r.status != 200 && r.status != 202) {
        std::cout << publish_json(rec).dump() << "\n";
        auto why = j.value("error", "HTTP " + std::to_string(r.status));
        std::cerr << "error: stored, but cannot wait for " << wait << ": " << why << "\n";
        return exit_failure;
    }
    if (auto st = outbox::parse_state(j.value("state", "")))
        rec.st = *st;
    std::cout << publish_json(rec).dump() << "\n";
    if (r.status == 200)
        return exit_ok;
    if (rec.st == outbox::state::failed)
        std::cerr << "error: stored, but the cloud rejected it: "
                  << (j["last_error"].is_string() ? j["last_error"].get<std::string>() : "")
                  << "\n";
    else
        std::cerr << "error: stored, but not " << wait << " within " << timeout_ms << " ms (state "
                  << outbox::to_string(rec.st) << ")\n";
    return exit_failure;
}

int cmd_publish(const publish_options& o) {
    auto l = load_cli_config(o.env);
    if (!l)
        return exit_usage;
    const auto& cfg = l->cfg;

    std::string why;
    auto data = read_data_arg(o.data, why);
    if (!data) {
        std::cerr << "error: " << why << "\n";
        return exit_usage;
    }
    std::optional<std::string_view> id, prio;
    if (o.id)
        id = *o.id;
    if (o.priority)
        prio = *o.priority;
    auto req = protocol::make_publish_request(o.topic, *data, id, prio);
    if (!req) {
        std::cerr << "error: " << req.error() << "\n";
        return exit_usage;
    }
    protocol::apply_topic_priority(req.value(), cfg.topic_priority);
    if (req->data.size() > cfg.max_message_bytes) {
        std::cerr << "error: data is " << req->data.size()
                  << " bytes, more than MAX_MESSAGE_BYTES (" << cfg.max_message_bytes << ")\n";
        return exit_usage;
    }
    if (auto bad = check_wait_options(o, cfg); !bad.empty()) {
        std::cerr << "error: " << bad << "\n";
        return exit_usage;
    }
    int rc = exit_ok;
    auto store = open_store(cfg, false, rc);
    if (!store)
        return rc;
    // A lane that rebuilds hands out no seq before it restored what its peers hold.
    if (auto rb = store->get_rebuild_state(); rb.active) {
        store->close();
        std::cerr << "error: the lane is rebuilding its outbox from its peers (" << rb.reason
                  << "); nothing stored, see lanesync rebuild --env " << o.env << "\n";
        return exit_failure;
    }
    // A new outbox without peers takes no seq before the agent asked the cloud for this lane's
    // highest seq (the cloud check, docs/architecture.md): publish through the agent's API.
    if (cfg.peers.empty() && cfg.cloud_enabled()) {
        auto h = store->hwm();
        if (auto own = h.find(cfg.terminal_id); own == h.end() || own->second == 0) {
            store->close();
            std::cerr << "error: this lane's outbox has no own message and no peer is "
                         "configured: its first seq must follow the cloud's highest seq of "
                      << cfg.terminal_id
                      << ", which the agent asks for; nothing stored, publish through the "
                         "running agent (POST /v1/messages)\n";
            return exit_failure;
        }
    }
    auto o2 = outbox::publish_sync(*store, std::move(req.value()));
    store->close(); // durable before we report success (publish_sync already waited for it)
    switch (o2.k) {
    case outbox::publish_outcome::created:
    case outbox::publish_outcome::existing:
        if (o.wait)
            return wait_for_ack(cfg, std::move(o2.rec), *o.wait,
                                o.timeout_ms.value_or(tuning::api_wait_default.count()));
        std::cout << publish_json(o2.rec).dump() << "\n";
        return exit_ok;
    case outbox::publish_outcome::conflict:
        std::cerr << "error: id " << o2.rec.msg.id << " already used with other content\n";
        return exit_failure;
    case outbox::publish_outcome::storage_failed:
        break;
    }
    std::cerr << "error: storage failure: " << o2.error << "\n";
    return exit_failure;
}

struct retry_options {
    std::string env;
    bool all_failed = false;
    std::vector<std::string> ids;
};

int cmd_retry(const retry_options& o) {
    if (o.all_failed == !o.ids.empty()) {
        std::cerr << "retry: give either --failed or one or more message ids\n";
        return exit_usage;
    }
    std::vector<std::string> ids;
    for (const auto& id : o.ids) {
        if (!protocol::valid_uuid(id)) {
            std::cerr << "retry: not a message id (UUID): " << id << "\n";
            return exit_usage;
        }
        ids.push_back(protocol::normalize_uuid(id));
    }
    auto l = load_cli_config(o.env);
    if (!l)
        return exit_usage;
    int rc = exit_ok;
    auto store = open_store(l->cfg, false, rc);
    if (!store)
        return rc;
    auto r = outbox::retry_sync(*store, ids);
    store->close();
    if (!r.ok) {
        std::cerr << "error: " << r.error << "\n";
        return exit_failure;
    }
    std::cout << "re-queued " << r.count << " failed message" << (r.count == 1 ? "" : "s");
    if (!ids.empty() && r.count < ids.size())
        std::cout << " (" << ids.size() - r.count << " of the given ids were not failed)";
    std::cout << "\n";
    return exit_ok;
}

int cmd_prune(const std::string& env) {
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    int rc = exit_ok;
    auto store = open_store(l->cfg, false, rc);
    if (!store)
        return rc;
    // In the agent's steps (tuning::prune_batch_rows a transaction), so that a running agent's
    // publishes commit between them.
    const auto began = std::chrono::steady_clock::now();
    const auto cutoff = protocol::now_ms() - l->cfg.retention.count();
    std::size_t total = 0, transactions = 0;
    outbox::count_outcome o;
    do {
        o = outbox::prune_sync(*store, cutoff, tuning::prune_batch_rows);
        total += o.count;
        ++transactions;
    } while (o.ok && o.count == tuning::prune_batch_rows);
    store->close();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - began)
                        .count();
    const std::string what = std::to_string(total) + " message" + (total == 1 ? "" : "s") +
                             " in cloud_ack for more than " + conf::days_text(l->cfg.retention) +
                             " days (OUTBOX_RETENTION_DAYS), in " + std::to_string(transactions) +
                             " transaction" + (transactions == 1 ? "" : "s") + ", " +
                             std::to_string(ms) + " ms";
    if (!o.ok) {
        std::cerr << "error: " << o.error << " (pruned " << what << " before it)\n";
        return exit_failure;
    }
    std::cout << "pruned " << what << "\n";
    return exit_ok;
}

int cmd_check_db(const std::string& env) {
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    std::error_code ec;
    if (!std::filesystem::exists(l->cfg.outbox_path, ec)) {
        std::cerr << "error: no outbox at " << l->cfg.outbox_path
                  << " (no agent has run with this OUTBOX_PATH yet)\n";
        return exit_failure;
    }
    int rc = exit_ok;
    auto store = open_store(l->cfg, true, rc);
    if (!store)
        return rc;
    std::vector<std::string> problems;
    try {
        problems = store->integrity_check();
    } catch (const std::exception& e) {
        problems.push_back(e.what());
    }
    if (problems.empty()) {
        std::cout << "ok: " << l->cfg.outbox_path << ": integrity check passed\n";
        return exit_ok;
    }
    std::cerr << "error: " << l->cfg.outbox_path << ": " << problems.size() << " problem"
              << (problems.size() == 1 ? "" : "s") << "\n";
    for (const auto& p : problems)
        std::cerr << "  " << p << "\n";
    return exit_failure;
}

} // namespace

command add_publish(CLI::App& app) {
    auto o = std::make_shared<publish_options>();
    auto* sub = app.add_subcommand(
        "publish", "Store one message in the lane's outbox (works with or without the agent)");
    env_option(sub, o->env);
    sub->add_option("--topic", o->topic, "Topic, 1-64 characters of [a-z0-9_.-]")
        ->required()
        ->type_name("TOPIC");
    sub->add_option("--data", o->data, "The data: a JSON object, @FILE, or @- for stdin")
        ->required()
        ->type_name("JSON|@FILE");
    sub->add_option("--id", o->id, "Idempotency key (UUID); a new UUIDv7 when absent")
        ->type_name("UUID");
    sub->add_option(
           "--priority", o->priority,
           "critical, high, normal or low (default: the topic's TOPIC_PRIORITY entry, else normal)")
        ->type_name("PRIORITY");
    sub->add_option("--wait", o->wait,
                    "Then wait (through the running agent) until the message is peer_ack or "
                    "cloud_ack; exit 1 if it is not within --timeout-ms")
        ->check(CLI::IsMember({"peer_ack", "cloud_ack"}))
        ->type_name("STATE");
    sub->add_option("--timeout-ms", o->timeout_ms, "How long --wait waits (default 5000)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{tuning::api_wait_max.count()}))
        ->type_name("N");
    return {sub, [o] { return cmd_publish(*o); }};
}

command add_retry(CLI::App& app) {
    auto o = std::make_shared<retry_options>();
    auto* sub = app.add_subcommand(
        "retry", "Re-queue failed messages (all with --failed, or the given ids)");
    env_option(sub, o->env);
    sub->add_flag("--failed", o->all_failed, "Re-queue every failed message");
    sub->add_option("ids", o->ids, "Message ids (UUIDs) to re-queue")->type_name("ID...");
    return {sub, [o] { return cmd_retry(*o); }};
}

command add_prune(CLI::App& app) {
    auto env = std::make_shared<std::string>();
    auto* sub =
        app.add_subcommand("prune", "Delete cloud_ack messages older than OUTBOX_RETENTION_DAYS");
    env_option(sub, *env);
    return {sub, [env] { return cmd_prune(*env); }};
}

command add_check_db(CLI::App& app) {
    auto env = std::make_shared<std::string>();
    auto* sub =
        app.add_subcommand("check-db", "Run the SQLite integrity check of the lane's outbox");
    env_option(sub, *env);
    return {sub, [env] { return cmd_check_db(*env); }};
}

} // namespace lanesync::agent::cli
