// libFuzzer target: the peer state machine (protocol/peer_machine*.cpp) driven by a sequence of
// frames from the fuzz input, with a tiny in-memory stand-in for the outbox and the hub that
// answers every action it asks for.
//
// Input: byte 0 picks the setup (bit 0 server role, bit 1 offer v1, bit 2 rebuilding, bit 3 a
// trust cap on "L3"); the rest is lines. A line is a frame (JSON text: decoded with
// decode_frame and fed with on_frame; a mac of 64 zeros is replaced by the right one so the
// fuzzer gets past authentication), a line that does not decode is fed as text, and a line
// "!x" is a local event (see event()). Outbox answers are queued and delivered by "!a" (all)
// or "!1" (the oldest); at the end of the input everything pending is delivered.
// FUZZ_TRACE=1 prints what the machine sends and why it closes.
// Properties: every frame the machine sends decodes; the window bounds hold (batches in flight,
// commits pending). After a close or abort the driver stops, as the session does.
#include "protocol/peer_machine.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace {

using namespace lanesync::protocol;

const std::string secret = "fuzz-secret-0123456789";
const std::string store = "S1";
const std::string me = "L1";
const std::string zero_mac(64, '0');
/// FUZZ_TRACE=1: print what the machine sends and why it closes (to check a seed's path).
const bool trace = std::getenv("FUZZ_TRACE") != nullptr;

std::string id_of(const std::string& origin, std::uint64_t seq) {
    std::string tail = std::to_string(seq % 100000000000ULL);
    std::string org;
    for (char c : origin.substr(0, 2))
        org += "0123456789abcdef"[static_cast<unsigned char>(c) % 16];
    while (org.size() < 2)
        org += '0';
    return "0190a5d3-ac96-7f4b-bc" + org + "-0" + std::string(11 - tail.size(), '0') + tail;
}

struct driver {
    peer_machine m;
    peer_role role;
    std::string nonce_c, nonce_s, peer_term;
    std::map<std::string, std::map<std::uint64_t, std::string>> held; ///< origin -> seq -> id
    std::deque<std::function<peer_actions()>> pending;
    bool closed = false;

    driver(peer_machine_config cfg, peer_role r) : m(std::move(cfg), r), role(r) {
        for (std::uint64_t s = 1; s <= 3; ++s)
            held[me][s] = id_of(me, s);
    }

    std::uint64_t hwm_of(const std::string& origin) const {
        auto it = held.find(origin);
        if (it == held.end())
            return 0;
        std::uint64_t h = 0;
        while (it->second.count(h + 1))
            ++h;
        return h;
    }
    hwm_map hwm() const {
        hwm_map h;
        for (const auto& [o, _] : held)
            if (auto s = hwm_of(o))
                h[o] = s;
        return h;
    }
    tip_ids tips(const hwm_map& at) const {
        tip_ids ids;
        for (const auto& [o, s] : at)
            if (auto it = held.find(o); it != held.end())
                if (auto hit = it->second.find(s); hit != it->second.end())
                    ids[o] = hit->second;
        return ids;
    }
    std::string id_at(const std::string& origin, std::uint64_t seq) const {
        auto it = held.find(origin);
        if (it == held.end())
            return {};
        auto at = it->second.find(seq);
        return at == it->second.end() ? std::string() : at->second;
    }

    void sent(const send_frame& s) {
        if (trace)
            std::fprintf(stderr, "sent %s\n", s.text.substr(0, 120).c_str());
        auto d = decode_frame(s.text, frame_limits{});
        FUZZ_CHECK(std::holds_alternative<frame>(d));
        const auto& f = std::get<frame>(d);
        if (auto* h = std::get_if<hello_frame>(&f))
            nonce_c = h->nonce;
        if (auto* c = std::get_if<challenge_frame>(&f))
            nonce_s = c->nonce;
    }

    void queue(const peer_action& a) {
        if (auto* s = std::get_if<send_frame>(&a))
            return sent(*s);
        if (std::holds_alternative<close_link>(a) || std::holds_alternative<abort_link>(a)) {
            if (trace)
                if (auto* c = std::get_if<close_link>(&a))
                    std::fprintf(stderr, "close %u %s\n", c->code, c->reason.c_str());
            closed = true;
            return;
        }
        if (std::holds_alternative<join_hub>(a)) {
            pending.emplace_back([this] { return m.on_join(""); });
        } else if (auto* r = std::get_if<read_hwm>(&a)) {
            bool ids = r->ids;
            pending.emplace_back([this, ids] {
                auto h = hwm();
                return m.on_hwm(h, ids ? tips(h) : tip_ids{});
            });
        } else if (auto* b = std::get_if<store_batch>(&a)) {
            pending.emplace_back([this, b = *b] { return commit(b); });
        } else if (auto* t = std::get_if<read_tip_ids>(&a)) {
            pending.emplace_back([this, t = *t] { return m.on_ack_ids(t.n, tips(t.at)); });
        } else if (auto* o = std::get_if<read_own_mark>(&a)) {
            auto seq = o->seq;
            pending.emplace_back(
                [this, seq] { return m.on_own_mark(seq, hwm_of(me), id_at(me, seq)); });
        } else if (auto* g = std::get_if<read_origin_mark>(&a)) {
            pending.emplace_back([this, g = *g] {
                return m.on_origin_mark(g.origin, g.seq, id_at(g.origin, g.seq));
            });
        } else if (auto* n = std::get_if<read_next_batch>(&a)) {
            pending.emplace_back([this, n = *n] { return next_batch(n); });
        }
    }

    peer_actions commit(const store_batch& b) {
        stored_outcome o;
        for (const auto& msg : b.messages) {
            auto& at = held[msg.origin];
            if (auto it = at.find(msg.seq); it != at.end() && it->second != msg.id) {
                o.conflict = msg.id;
                o.hwm = hwm();
                return m.on_stored(b.n, o);
            }
            if (at.emplace(msg.seq, msg.id).second)
                ++o.inserted;
        }
        o.ok = true;
        o.hwm = hwm();
        return m.on_stored(b.n, o);
    }

    peer_actions next_batch(const read_next_batch& n) {
        std::vector<message> out;
        for (const auto& [origin, seqs] : held) {
            if (origin == n.peer && !n.include_peer_origin)
                continue;
            std::uint64_t after = 0;
            if (auto it = n.after.find(origin); it != n.after.end())
                after = it->second;
            for (auto it = seqs.upper_bound(after); it != seqs.end() && out.size() < n.limit;
                 ++it) {
                message msg;
                msg.id = it->second;
                msg.origin = origin;
                msg.seq = it->first;
                msg.topic = "sale";
                msg.data = "{}";
                msg.created_at_ms = 1;
                out.push_back(std::move(msg));
            }
        }
        return m.on_next_batch(std::move(out), {});
    }

    void take(const peer_actions& out) {
        FUZZ_CHECK(m.in_flight() <= 4);
        FUZZ_CHECK(m.commits_pending() <= 4);
        for (const auto& a : out)
            queue(a);
    }

    void deliver_one() {
        if (pending.empty() || closed)
            return;
        auto f = std::move(pending.front());
        pending.pop_front();
        take(f());
    }
    void deliver_all() {
        for (int i = 0; i < 64 && !pending.empty() && !closed; ++i)
            deliver_one();
    }

    void patch(frame& f) {
        if (auto* h = std::get_if<hello_frame>(&f)) {
            peer_term = h->terminal;
            nonce_c = h->nonce;
        } else if (auto* c = std::get_if<challenge_frame>(&f)) {
            if (c->mac == zero_mac)
                c->mac =
                    peer_mac(secret, peer_role::server, store, me, c->terminal, nonce_c, c->nonce);
        } else if (auto* a = std::get_if<auth_frame>(&f)) {
            if (a->mac == zero_mac && !nonce_s.empty())
                a->mac =
                    peer_mac(secret, peer_role::client, store, peer_term, me, nonce_c, nonce_s);
        }
    }

    void event(char c) {
        switch (c) {
        case 'a':
            return deliver_all();
        case '1':
            return deliver_one();
        case 'w':
            return take(m.on_wake());
        case 's':
            return take(m.on_sender(true));
        case 'S':
            return take(m.on_sender(false));
        case 'q':
            return take(m.on_write_queue(true));
        case 'Q':
            return take(m.on_write_queue(false));
        case 't':
            return take(m.on_auth_timeout());
        case 'b':
            return take(m.on_binary());
        case 'n': {
            news n;
            n.seen = {{"L3", 1000}};
            n.cloud = {{me, 1}, {"L3", 2}};
            n.cover = {"L3"};
            n.holds = {"L3"};
            return take(m.on_news(std::move(n)));
        }
        case 'c':
            return take(m.on_close_request(close_code::going_away, "shutting down"));
        default:
            return;
        }
    }

    void line(std::string_view l) {
        if (closed)
            return;
        if (l.size() == 2 && l[0] == '!')
            return event(l[1]);
        auto d = decode_frame(l, frame_limits{});
        if (auto* f = std::get_if<frame>(&d)) {
            patch(*f);
            if (auto* c = std::get_if<challenge_frame>(f))
                peer_term = c->terminal;
            return take(m.on_frame(std::move(*f)));
        }
        take(m.on_text(l));
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0)
        return 0;
    std::uint8_t setup = bytes[0];
    peer_machine_config cfg;
    cfg.store_id = store;
    cfg.terminal_id = me;
    cfg.secret = secret;
    cfg.offer_version = (setup & 2) ? 1 : 0;
    cfg.rebuilding = (setup & 4) != 0;
    cfg.incarnation = std::string(32, 'a');
    if (setup & 8)
        cfg.trust_caps["L3"] = 2;
    cfg.batch_max_messages = 4;
    driver d(cfg, (setup & 1) ? peer_role::server : peer_role::client);
    d.take(d.m.start());
    std::string_view rest(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    for (int frames = 0; !rest.empty() && frames < 256; ++frames) {
        auto nl = rest.find('\n');
        d.line(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    d.deliver_all();
    return 0;
}
