#include "agent/cli.hpp"

#include "agent/node.hpp"
#include "agent/status.hpp"
#include "agent/views.hpp"
#include "base/log.hpp"
#include "conf/config.hpp"
#include "outbox/outbox.hpp"
#include "protocol/message.hpp"
#include "protocol/publish.hpp"

#include <CLI/CLI.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

namespace lanesync::agent {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

/// How long `status` waits for a running agent before reading the outbox file itself.
constexpr auto probe_timeout = std::chrono::milliseconds(1000);
/// How long the cloud control commands wait for the agent's answer.
constexpr auto control_timeout = std::chrono::milliseconds(5000);
/// Largest answer the CLI accepts from the agent.
constexpr std::size_t max_reply_bytes = 64u << 20;

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
    interrupted = true;
}

/// Loads an env file; on a problem prints "FILE:LINE: KEY: why" and returns nullopt (exit 2).
std::optional<conf::loaded> load_config(const std::string& path) {
    try {
        return conf::load(path);
    } catch (const conf::config_error& e) {
        std::cerr << e.what() << "\n";
        return std::nullopt;
    }
}

/// Logging for the short-lived commands: warnings and errors only, unless LOG_LEVEL asks
/// for more detail than info.
void configure_cli_log(const conf::config& cfg) {
    log::level lvl = log::level::info;
    log::parse_level(cfg.log_level, lvl);
    if (lvl == log::level::info)
        lvl = log::level::warn;
    log::configure({lvl, cfg.log_json, cfg.terminal_id});
    log::add_secret(cfg.peer_secret);
    log::add_secret(cfg.supabase_service_key);
}

void print_warnings(const conf::loaded& l) {
    for (const auto& w : l.warnings)
        std::cerr << "warning: " << w.text << "\n";
}

/// Loads the env file for a command that runs in the CLI process: logging set up for the CLI
/// (secrets registered with the redactor) and warnings printed to stderr.
std::optional<conf::loaded> load_cli_config(const std::string& path) {
    auto l = load_config(path);
    if (l) {
        configure_cli_log(l->cfg);
        print_warnings(*l);
    }
    return l;
}

/// Opens the outbox for writing (the CLI may run beside the agent: WAL + write lock).
std::unique_ptr<outbox::store> open_store(const conf::config& cfg, bool read_only, int& rc) {
    try {
        return outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, read_only});
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        rc = exit_failure;
        return nullptr;
    }
}

std::string agent_address(const conf::config& cfg) {
    return "127.0.0.1:" + std::to_string(cfg.local_api_port);
}

// ---- status ------------------------------------------------------------------------------------

/// The status document of one lane: from its running agent if one answers, else read from
/// the outbox file. On failure returns nullopt with `why`.
std::optional<json> lane_status(const conf::config& cfg, std::string& why) {
    auto reply = local_http(cfg.local_api_port, "GET", "/v1/status", probe_timeout);
    if (reply.status == 200) {
        json j = json::parse(reply.body, nullptr, false);
        // Something else could listen on that port; only our lane's agent counts.
        if (j.is_object() && j.value("terminal_id", std::string()) == cfg.terminal_id)
            return j;
    }
    std::error_code ec;
    if (!std::filesystem::exists(cfg.outbox_path, ec)) {
        why = "agent not running on " + agent_address(cfg) + " and no outbox at " +
              cfg.outbox_path + " yet";
        return std::nullopt;
    }
    try {
        auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, true});
        return status_json(cfg, *store, nullptr, nullptr, false);
    } catch (const std::exception& e) {
        why = std::string("agent not running on ") + agent_address(cfg) + "; " + e.what();
        return std::nullopt;
    }
}

/// Every *.env file of a folder, sorted.
std::vector<std::filesystem::path> env_files(const std::string& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".env")
            out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

struct status_options {
    std::string env;
    std::string store_dir;
    bool as_json = false;
    double watch_secs = 0;
    bool watch = false;
};

/// One rendering of `status`; returns the exit code it would have.
int render_status(const status_options& o, std::string& out) {
    if (!o.env.empty()) {
        // Configuration was validated before the first rendering; a later edit that breaks it
        // shows as an error here.
        auto l = load_config(o.env);
        if (!l)
            return exit_usage;
        std::string why;
        auto s = lane_status(l->cfg, why);
        if (!s) {
            out = why + "\n";
            return exit_failure;
        }
        out = o.as_json ? s->dump(2) + "\n" : status_table(*s);
        return exit_ok;
    }
    std::vector<json> lanes;
    int rc = exit_ok;
    for (const auto& f : env_files(o.store_dir)) {
        std::optional<conf::loaded> l;
        try {
            l = conf::load(f.string());
        } catch (const conf::config_error& e) {
            lanes.push_back({{"env", f.string()}, {"error", e.what()}});
            rc = exit_usage;
            continue;
        }
        std::string why;
        auto s = lane_status(l->cfg, why);
        if (s) {
            (*s)["env"] = f.string();
            lanes.push_back(std::move(*s));
        } else {
            lanes.push_back({{"env", f.string()},
                             {"terminal_id", l->cfg.terminal_id},
                             {"agent_running", false},
                             {"error", why}});
            if (rc == exit_ok)
                rc = exit_failure;
        }
    }
    if (lanes.empty()) {
        out = "no *.env files in " + o.store_dir + "\n";
        return exit_failure;
    }
    out = o.as_json ? json(lanes).dump(2) + "\n" : store_table(lanes);
    return rc;
}

int cmd_status(const status_options& o) {
    if (o.env.empty() == o.store_dir.empty()) {
        std::cerr << "status: give exactly one of --env FILE or --store DIR\n";
        return exit_usage;
    }
    if (!o.store_dir.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_directory(o.store_dir, ec)) {
            std::cerr << "status: " << o.store_dir << " is not a folder\n";
            return exit_usage;
        }
    } else {
        auto l = load_cli_config(o.env);
        if (!l)
            return exit_usage;
    }
    if (!o.watch) {
        std::string out;
        int rc = render_status(o, out);
        (rc == exit_ok ? std::cout : std::cerr) << out;
        return rc;
    }
    // --watch: redraw in place (cursor home + clear screen) until Ctrl-C.
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    auto period = std::chrono::milliseconds(static_cast<std::int64_t>(o.watch_secs * 1000));
    while (!interrupted) {
        std::string out;
        render_status(o, out);
        char head[64];
        std::snprintf(head, sizeof head, "every %.1fs, Ctrl-C to stop", o.watch_secs);
        std::cout << "\x1b[H\x1b[2J" << protocol::format_time_ms(protocol::now_ms()) << "  " << head
                  << "\n\n"
                  << out << std::flush;
        auto until = std::chrono::steady_clock::now() + period;
        while (!interrupted && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::cout << "\n";
    return exit_ok;
}

// ---- the other commands -------------------------------------------------------------------------

int cmd_agent(const std::string& env) {
    auto l = load_config(env);
    if (!l)
        return exit_usage;
    log::level lvl = log::level::info;
    log::parse_level(l->cfg.log_level, lvl);
    log::configure({lvl, l->cfg.log_json, l->cfg.terminal_id});
    for (const auto& w : l->warnings)
        log::warn("config.warning", {{"warning", w.text}});
    return run_agent(l->cfg);
}

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

int cmd_retry(const std::string& env, bool all_failed, const std::vector<std::string>& ids_in) {
    if (all_failed == !ids_in.empty()) {
        std::cerr << "retry: give either --failed or one or more message ids\n";
        return exit_usage;
    }
    std::vector<std::string> ids;
    for (const auto& id : ids_in) {
        if (!protocol::valid_uuid(id)) {
            std::cerr << "retry: not a message id (UUID): " << id << "\n";
            return exit_usage;
        }
        ids.push_back(protocol::normalize_uuid(id));
    }
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    int rc = exit_ok;
    auto store = open_store(l->cfg, false, rc);
    if (!store)
        return rc;
    auto o = outbox::retry_sync(*store, ids);
    store->close();
    if (!o.ok) {
        std::cerr << "error: " << o.error << "\n";
        return exit_failure;
    }
    std::cout << "re-queued " << o.count << " failed message" << (o.count == 1 ? "" : "s");
    if (!ids.empty() && o.count < ids.size())
        std::cout << " (" << ids.size() - o.count << " of the given ids were not failed)";
    std::cout << "\n";
    return exit_ok;
}

int cmd_cloud_control(const std::string& env, const std::string& what) {
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    std::string target = what == "sync-now" ? "/v1/sync" : "/v1/cloud/" + what;
    auto r = local_http(l->cfg.local_api_port, "POST", target, control_timeout);
    if (r.status == 0) {
        std::cerr << "agent is not running on " << agent_address(l->cfg) << "\n";
        return exit_failure;
    }
    if (r.status == 202) {
        std::cout << (what == "sync-now" ? "ok: upload requested"
                      : what == "pause"  ? "ok: cloud uploads paused"
                                         : "ok: cloud uploads resumed")
                  << "\n";
        return exit_ok;
    }
    json j = json::parse(r.body, nullptr, false);
    std::string msg = j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>()
                          : "HTTP " + std::to_string(r.status);
    std::cerr << "error: " << msg << "\n";
    return exit_failure;
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

int cmd_check_config(const std::string& env) {
    auto l = load_config(env);
    if (!l)
        return exit_usage;
    const auto& c = l->cfg;
    std::cout << "ok: " << env << ": lane " << c.terminal_id << ", store " << c.store_id << ", "
              << c.peers.size() << (c.peers.size() == 1 ? " peer" : " peers") << ", cloud "
              << (c.cloud_enabled() ? "on" : "off") << "\n";
    for (const auto& w : l->warnings)
        std::cout << "warning: " << w.text << "\n";
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

int run_cli(int argc, char** argv) {
    CLI::App app{"lanesync " LANESYNC_VERSION
                 ": lane agent for retail point-of-sale (local outbox, peer replication, cloud "
                 "upload)",
                 "lanesync"};
    app.set_version_flag("--version", "lanesync " LANESYNC_VERSION, "Print the version and exit");
    app.require_subcommand(1);
    app.footer("Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n"
               "Each command has its own --help. See docs/cli.md.");

    auto env_option = [](CLI::App* sub, std::string& into) {
        return sub->add_option("--env", into, "The lane's env file (e.g. examples/store/L1.env)")
            ->required()
            ->type_name("FILE");
    };

    std::string env;
    auto* agent = app.add_subcommand(
        "agent", "Run one lane's agent in the foreground (SIGTERM/SIGINT = clean stop)");
    env_option(agent, env);

    publish_options po;
    auto* publish = app.add_subcommand(
        "publish", "Store one message in the lane's outbox (works with or without the agent)");
    env_option(publish, po.env);
    publish->add_option("--topic", po.topic, "Topic, 1-64 characters of [a-z0-9_.-]")
        ->required()
        ->type_name("TOPIC");
    publish->add_option("--data", po.data, "The data: a JSON object, @FILE, or @- for stdin")
        ->required()
        ->type_name("JSON|@FILE");
    publish->add_option("--id", po.id, "Idempotency key (UUID); a new UUIDv7 when absent")
        ->type_name("UUID");
    publish->add_option("--priority", po.priority, "critical, high, normal (default) or low")
        ->type_name("PRIORITY");

    status_options so;
    auto* status = app.add_subcommand(
        "status", "Show a lane's outbox, peers and cloud (or every lane of a folder)");
    auto* st_env = status->add_option("--env", so.env, "The lane's env file")->type_name("FILE");
    auto* st_store =
        status
            ->add_option("--store", so.store_dir, "A folder: one table for every *.env file in it")
            ->type_name("DIR");
    st_env->excludes(st_store);
    status->add_flag("--json", so.as_json, "Print the status document as JSON");
    auto* watch = status
                      ->add_option("--watch", so.watch_secs,
                                   "Refresh every SECS seconds (default 2) until Ctrl-C")
                      ->expected(0, 1)
                      ->default_str("2")
                      ->type_name("[SECS]")
                      ->check(CLI::PositiveNumber);

    bool all_failed = false;
    std::vector<std::string> retry_ids;
    auto* retry = app.add_subcommand(
        "retry", "Re-queue failed messages (all with --failed, or the given ids)");
    env_option(retry, env);
    retry->add_flag("--failed", all_failed, "Re-queue every failed message");
    retry->add_option("ids", retry_ids, "Message ids (UUIDs) to re-queue")->type_name("ID...");

    auto* sync_now =
        app.add_subcommand("sync-now", "Ask the running agent to upload to the cloud now");
    env_option(sync_now, env);
    auto* pause = app.add_subcommand("pause", "Pause the running agent's cloud uploads");
    env_option(pause, env);
    auto* resume = app.add_subcommand("resume", "Resume the running agent's cloud uploads");
    env_option(resume, env);

    auto* prune =
        app.add_subcommand("prune", "Delete cloud_ack messages older than OUTBOX_RETENTION_DAYS");
    env_option(prune, env);
    auto* check_config =
        app.add_subcommand("check-config", "Validate an env file and summarize it");
    env_option(check_config, env);
    auto* check_db =
        app.add_subcommand("check-db", "Run the SQLite integrity check of the lane's outbox");
    env_option(check_db, env);

    // CLI11 would call an unknown command "A subcommand is required"; say what is wrong.
    if (argc > 1 && argv[1][0] != '-') {
        std::string first = argv[1];
        auto subs = app.get_subcommands([](CLI::App*) { return true; });
        bool known = std::any_of(subs.begin(), subs.end(),
                                 [&](CLI::App* s) { return s->get_name() == first; });
        if (!known) {
            std::cerr << "lanesync: unknown command '" << first << "' (see lanesync --help)\n";
            return exit_usage;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e); // prints help, version or the error
        return code == 0 ? exit_ok : exit_usage;
    }

    if (agent->parsed())
        return cmd_agent(env);
    if (publish->parsed())
        return cmd_publish(po);
    if (status->parsed()) {
        so.watch = watch->count() > 0;
        return cmd_status(so);
    }
    if (retry->parsed())
        return cmd_retry(env, all_failed, retry_ids);
    if (sync_now->parsed())
        return cmd_cloud_control(env, "sync-now");
    if (pause->parsed())
        return cmd_cloud_control(env, "pause");
    if (resume->parsed())
        return cmd_cloud_control(env, "resume");
    if (prune->parsed())
        return cmd_prune(env);
    if (check_config->parsed())
        return cmd_check_config(env);
    if (check_db->parsed())
        return cmd_check_db(env);
    std::cerr << app.help();
    return exit_usage;
}

} // namespace

std::optional<std::string> read_data_arg(const std::string& arg, std::string& error) {
    if (arg.empty() || arg.front() != '@')
        return arg;
    std::string path = arg.substr(1);
    if (path == "-") {
        std::string text((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
        if (std::cin.bad()) {
            error = "cannot read the data from stdin";
            return std::nullopt;
        }
        return text;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read data file " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        error = "cannot read data file " + path;
        return std::nullopt;
    }
    return ss.str();
}

http_reply local_http(std::uint16_t port, std::string_view method, std::string_view target,
                      std::chrono::milliseconds timeout, std::string_view body) {
    http_reply out;
    try {
        net::io_context ioc(1);
        auto verb = http::string_to_verb(method);
        std::string tgt(target), payload(body);
        auto exchange = [&]() -> net::awaitable<void> {
            beast::tcp_stream stream(co_await net::this_coro::executor);
            // One deadline for connect, request and answer.
            stream.expires_after(timeout);
            tcp::endpoint ep(net::ip::make_address_v4("127.0.0.1"), port);
            auto [cec] = co_await stream.async_connect(ep, net::as_tuple(net::use_awaitable));
            if (cec) {
                out.error = cec.message();
                co_return;
            }
            http::request<http::string_body> req{verb, tgt, 11};
            req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
            req.set(http::field::user_agent, "lanesync-cli/" LANESYNC_VERSION);
            if (!payload.empty())
                req.set(http::field::content_type, "application/json");
            req.body() = payload;
            req.keep_alive(false);
            req.prepare_payload();
            auto [wec, wn] =
                co_await http::async_write(stream, req, net::as_tuple(net::use_awaitable));
            (void)wn;
            if (wec) {
                out.error = wec.message();
                co_return;
            }
            beast::flat_buffer buf;
            http::response_parser<http::string_body> parser;
            parser.body_limit(max_reply_bytes);
            auto [rec, rn] =
                co_await http::async_read(stream, buf, parser, net::as_tuple(net::use_awaitable));
            (void)rn;
            if (rec) {
                out.error = rec.message();
                co_return;
            }
            out.status = static_cast<int>(parser.get().result_int());
            out.body = std::move(parser.get().body());
            boost::system::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        };
        net::co_spawn(ioc, exchange(), [&](std::exception_ptr e) {
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                out.status = 0;
                out.error = ex.what();
            }
        });
        ioc.run();
    } catch (const std::exception& e) {
        out.status = 0;
        out.error = e.what();
    }
    return out;
}

int cli_main(int argc, char** argv) {
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_failure;
    }
}

} // namespace lanesync::agent
