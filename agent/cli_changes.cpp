// `lanesync changes --env F --scope S [--since V] [--limit N] [--json]`: head office's changes
// this lane holds for one scope after a version, read from the outbox file (the agent need not
// run). The same rows as GET /v1/changes (docs/cli.md).
#include "agent/api_catalog.hpp"
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <iostream>

namespace lanesync::agent::cli {

namespace {

struct changes_options {
    std::string env, scope;
    std::int64_t since = 0;
    std::size_t limit = api::changes_default_limit;
    bool as_json = false;
};

int cmd_changes(const changes_options& o) {
    if (!protocol::valid_catalog_scope(o.scope)) {
        std::cerr << "error: invalid --scope '" << o.scope
                  << "' (1 to 64 characters of a-z 0-9 _ . -)\n";
        return exit_usage;
    }
    auto l = load_cli_config(o.env);
    if (!l)
        return exit_usage;
    int rc = exit_ok;
    auto store = open_store(l->cfg, true, rc);
    if (!store)
        return rc;
    auto scopes = store->catalog_scopes();
    auto held = api::held_scope(o.scope, scopes);
    if (auto* bad = std::get_if<api::response>(&held)) {
        auto j = nlohmann::json::parse(bad->body, nullptr, false);
        std::cerr << "error: " << (j.is_object() ? j.value("error", "") : bad->body) << "\n";
        return exit_failure;
    }
    const auto& st = std::get<protocol::catalog_scope_state>(held);
    auto rows = store->catalog_since(o.scope, o.since, o.limit);
    api::changes_query q{o.scope, o.since, o.limit, {}};
    auto answer = api::changes_answer(q, st, rows);
    if (o.as_json) {
        std::cout << answer.body;
        return exit_ok;
    }
    std::cout << "scope " << o.scope << ": through " << st.through << ", head " << st.head << ", "
              << st.keys << " keys" << (st.snapshot_active ? ", snapshot under way" : "") << "\n";
    for (const auto& c : rows)
        std::cout << c.version << "  " << c.key << "  " << (c.deleted ? "(deleted)" : c.data)
                  << "\n";
    if (rows.empty())
        std::cout << "no changes after version " << o.since << "\n";
    else if (rows.size() >= o.limit)
        std::cout << "more: lanesync changes --env " << o.env << " --scope " << o.scope
                  << " --since " << rows.back().version << "\n";
    return exit_ok;
}

} // namespace

command add_changes(CLI::App& app) {
    auto o = std::make_shared<changes_options>();
    auto* sub = app.add_subcommand(
        "changes", "Show head office's changes this lane holds for one scope (prices, ...)");
    env_option(sub, o->env);
    sub->add_option("--scope", o->scope, "the scope, e.g. prices")->required();
    sub->add_option("--since", o->since, "only changes with a version above this (default 0)")
        ->check(CLI::Range(std::int64_t(0), std::int64_t(9'007'199'254'740'992)));
    sub->add_option("--limit", o->limit, "at most this many changes (1-1000, default 100)")
        ->check(CLI::Range(std::size_t(1), api::changes_max_limit));
    sub->add_flag("--json", o->as_json, "print the GET /v1/changes document");
    return {sub, [o] { return cmd_changes(*o); }};
}

} // namespace lanesync::agent::cli
