// The commands that open the lane's outbox file themselves (with or without a running agent):
// `publish`, `retry`, `prune` and `check-db`.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "agent/views.hpp"
#include "protocol/message.hpp"
#include "protocol/publish.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

namespace lanesync::agent::cli {

namespace {

struct publish_options {
    std::string env, topic, data;
    std::optional<std::string> id, priority;
};

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
    if (req->data.size() > cfg.max_message_bytes) {
        std::cerr << "error: data is " << req->data.size()
                  << " bytes, more than MAX_MESSAGE_BYTES (" << cfg.max_message_bytes << ")\n";
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
    auto cutoff =
        protocol::now_ms() - static_cast<std::int64_t>(l->cfg.retention_days) * 86'400'000;
    auto o = outbox::prune_sync(*store, cutoff);
    store->close();
    if (!o.ok) {
        std::cerr << "error: " << o.error << "\n";
        return exit_failure;
    }
    std::cout << "pruned " << o.count << " message" << (o.count == 1 ? "" : "s")
              << " in cloud_ack for more than " << l->cfg.retention_days << " days\n";
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
    sub->add_option("--priority", o->priority, "critical, high, normal (default) or low")
        ->type_name("PRIORITY");
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
