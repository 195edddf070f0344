#include "agent/init_store.hpp"

#include "conf/config.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <sys/random.h>

namespace lanesync::agent {
namespace {

constexpr const char* doc = "configuration.md";

bool loopback_host(const std::string& h) {
    return h == "localhost" || h == "::1" || h == "[::1]" || h.rfind("127.", 0) == 0;
}

/// host:port for a URL: an IPv6 literal goes in brackets.
std::string authority(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string peer_url(const lane_file& f) {
    return "ws://" + authority(f.host, f.peer_port) + "/v1/peer";
}

std::string file_text(const init_store_options& o, const lane_file& me,
                      const std::vector<lane_file>& all) {
    std::string peers;
    for (const auto& f : all)
        if (f.lane != me.lane)
            peers += (peers.empty() ? "" : ",") + peer_url(f);
    const bool v6 = me.host.find(':') != std::string::npos;
    const std::string bind =
        loopback_host(me.host) ? (v6 ? "::1" : "127.0.0.1") : (v6 ? "::" : "0.0.0.0");
    std::string t;
    t += "# Lane " + me.lane + " of store " + o.store_id + " (" + std::to_string(all.size()) +
         (all.size() == 1 ? " lane" : " lanes") + "), written by `lanesync init-store`.\n";
    t += "# On the lane PC: /etc/lanesync/" + me.filename +
         ", mode 0600, then `systemctl enable --now lanesync@" + me.lane + "`.\n";
    t += "# Every key is described in " + std::string(doc) +
         ", \"Keys\" (/usr/share/doc/lanesync/ when installed from the package,\n"
         "# docs/ in the source). Check this file with: lanesync check-config --env FILE\n\n";
    t += "# This lane's id, unique in the store (TERMINAL_ID).\n";
    t += "TERMINAL_ID=" + me.lane + "\n";
    t += "# Every lane of the store has the same store id; peers of another store are refused "
         "(STORE_ID).\n";
    t += "STORE_ID=" + o.store_id + "\n";
    t += "# Where this lane listens for its peers; they dial " + peer_url(me) +
         "\n# (TERMINAL_PORT, TERMINAL_BIND).\n";
    t += "TERMINAL_PORT=" + std::to_string(me.peer_port) + "\n";
    t += "TERMINAL_BIND=" + bind + "\n";
    if (!peers.empty()) {
        t += "# The other lanes of the store (PEER_TERMINALS).\n";
        t += "PEER_TERMINALS=" + peers + "\n";
    }
    t += "# The store-wide shared secret, the same in every lane's file; generated at random "
         "by\n# init-store. Never commit or print it (PEER_SECRET).\n";
    t += "PEER_SECRET=" + o.peer_secret + "\n";
    if (!peers.empty()) {
        t += "# How many peers must hold a message before it is peer_ack (PEER_ACK_QUORUM).\n";
        t += "PEER_ACK_QUORUM=1\n";
    }
    t += "# The POS app's local HTTP API, on 127.0.0.1 only (LOCAL_API_PORT).\n";
    t += "LOCAL_API_PORT=" + std::to_string(me.api_port) + "\n";
    t += "# The outbox defaults to data/" + me.lane +
         ".db under the working directory: /var/lib/lanesync under\n"
         "# systemd (OUTBOX_PATH).\n";
    t += "# Cloud upload: uncomment and fill in; cloud.md says which key to use (SUPABASE_URL,\n"
         "# SUPABASE_SERVICE_KEY).\n";
    t += "# SUPABASE_URL=https://<project-ref>.supabase.co\n";
    t += "# SUPABASE_SERVICE_KEY=sb_secret_...\n";
    return t;
}

} // namespace

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto comma = text.find(',', start);
        auto item =
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto b = item.find_first_not_of(" \t");
        auto e = item.find_last_not_of(" \t");
        out.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
        if (comma == std::string::npos)
            return out;
        start = comma + 1;
    }
}

std::optional<std::vector<lane_file>> plan_store(const init_store_options& o, std::string& error) {
    auto fail = [&error](std::string why) {
        error = std::move(why);
        return std::nullopt;
    };
    if (o.lanes.empty())
        return fail("--lanes: give at least one lane id");
    if (!protocol::valid_store_id(o.store_id))
        return fail("--store: \"" + o.store_id + "\" is not a valid store id");
    if (!o.hosts.empty() && o.hosts.size() != o.lanes.size())
        return fail("--hosts: " + std::to_string(o.hosts.size()) + " hosts for " +
                    std::to_string(o.lanes.size()) + " lanes (give one host per lane)");
    if (o.peer_secret.size() < 16)
        return fail("the peer secret is shorter than 16 characters");
    std::set<std::string> seen;
    std::map<std::string, std::uint16_t> next_on_host; // host -> lanes placed there so far
    std::vector<lane_file> files;
    for (std::size_t i = 0; i < o.lanes.size(); ++i) {
        const auto& lane = o.lanes[i];
        if (!protocol::valid_terminal_id(lane))
            return fail("--lanes: \"" + lane + "\" is not a valid lane id ([A-Za-z0-9_-], " +
                        "1 to 32 characters)");
        if (!seen.insert(lane).second)
            return fail("--lanes: " + lane + " is given twice");
        lane_file f;
        f.lane = lane;
        f.filename = lane + ".env";
        f.host = o.hosts.empty() ? "127.0.0.1" : o.hosts[i];
        const unsigned k = next_on_host[f.host]++;
        if (o.peer_port + k > 65535 || o.api_port + k > 65535 || o.peer_port == 0 ||
            o.api_port == 0)
            return fail("ports past 65535: lower --port or --api-port");
        f.peer_port = static_cast<std::uint16_t>(o.peer_port + k);
        f.peer_url = peer_url(f);
        f.api_port = static_cast<std::uint16_t>(o.api_port + k);
        if (f.host.empty() || !conf::parse_peer_url(peer_url(f)))
            return fail("--hosts: \"" + f.host + "\" is not a host name or IP address");
        files.push_back(std::move(f));
    }
    // Two lanes of one host must not share a port (the peer range overlapping the API range).
    for (const auto& a : files)
        for (const auto& b : files)
            if (a.host == b.host && a.peer_port == b.api_port)
                return fail("lanes " + a.lane + " and " + b.lane + " on " + a.host +
                            " would both use port " + std::to_string(a.peer_port) +
                            ": move --port or --api-port apart");
    for (auto& f : files)
        f.text = file_text(o, f, files);
    return files;
}

std::string generate_peer_secret() {
    unsigned char bytes[32];
    std::size_t got = 0;
    while (got < sizeof bytes) {
        auto n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
        }
        got += static_cast<std::size_t>(n);
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

} // namespace lanesync::agent
