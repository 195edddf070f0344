#pragma once
// Two peer_machines over in-memory outboxes (peer_machine_v2_test.cpp,
// peer_machine_rebuild_test.cpp): a `lane` answers every action the way lanes/peer_session.cpp
// does against outbox::async_store, and run() plays both machines against each other.

#include "peer_machine_util.hpp"

#include <deque>
#include <map>

namespace {

/// An in-memory outbox and the machine it serves (contiguous prefix per origin; messages of
/// its own origin are stored only by a restoring batch, as the outbox does).
struct lane {
    std::string id;
    std::map<std::string, std::vector<message>> held; ///< origin -> messages 1..n
    peer_machine m;
    std::uint64_t acked_through = 0; ///< the highest peer_acked the machine reported
    std::vector<close_link> closes;
    std::vector<own_reported> reports;
    std::vector<news_received> news;
    std::vector<store_batch> stores;
    std::vector<read_next_batch> reads;

    lane(const std::string& me, peer_role role, int version)
        : lane(me, role, offer_config(me, version)) {}
    lane(const std::string& me, peer_role role, peer_machine_config cfg)
        : id(me), m(std::move(cfg), role) {}

    hwm_map hwm() const {
        hwm_map h;
        for (const auto& [o, ms] : held)
            h[o] = ms.size();
        return h;
    }
    tip_ids ids_at(const hwm_map& at) const {
        tip_ids ids;
        for (const auto& [o, s] : at)
            if (auto it = held.find(o); s > 0 && it != held.end() && s <= it->second.size())
                ids[o] = it->second[s - 1].id;
        return ids;
    }
    std::string id_at(const std::string& origin, std::uint64_t seq) const {
        auto ids = ids_at({{origin, seq}});
        return ids.count(origin) ? ids[origin] : std::string();
    }
    void publish(std::uint64_t n, int incarnation) {
        auto& ms = held[id];
        for (std::uint64_t i = 0; i < n; ++i)
            ms.push_back(msg(id, ms.size() + 1, incarnation));
    }
    /// `n` messages of `origin` from incarnation `incarnation`, as replicas.
    void replicate(const std::string& origin, std::uint64_t n, int incarnation) {
        auto& ms = held[origin];
        for (std::uint64_t i = 0; i < n; ++i)
            ms.push_back(msg(origin, ms.size() + 1, incarnation));
    }

    peer_actions store(store_batch& s) {
        stores.push_back(s);
        for (auto& mm : s.messages) {
            if (mm.origin == id && !s.restore)
                continue; // never our own origin, unless restoring
            auto& kept = held[mm.origin];
            if (mm.seq == kept.size() + 1)
                kept.push_back(mm); // extends the prefix (held ones are duplicates)
        }
        return m.on_stored(s.n, stored_outcome{true, "", false, "", 0, hwm()});
    }
    peer_actions next(const read_next_batch& rn) {
        reads.push_back(rn);
        std::vector<message> batch;
        for (const auto& [origin, list] : held) {
            if (origin == rn.peer && !rn.include_peer_origin)
                continue;
            std::uint64_t q = rn.after.count(origin) ? rn.after.at(origin) : 0;
            for (; q < list.size() && batch.size() < 50; ++q)
                batch.push_back(list[q]);
        }
        return m.on_next_batch(std::move(batch), {});
    }
    /// One action; what the machine answers at once.
    peer_actions answer(peer_action& act) {
        if (std::holds_alternative<join_hub>(act))
            return m.on_join("");
        if (auto* r = std::get_if<read_hwm>(&act))
            return m.on_hwm(hwm(), r->ids ? ids_at(hwm()) : tip_ids{});
        if (auto* t = std::get_if<read_tip_ids>(&act))
            return m.on_ack_ids(t->n, ids_at(t->at));
        if (auto* o = std::get_if<read_own_mark>(&act))
            return m.on_own_mark(o->seq, hwm()[id], id_at(id, o->seq));
        if (auto* om = std::get_if<read_origin_mark>(&act))
            return m.on_origin_mark(om->origin, om->seq, id_at(om->origin, om->seq));
        if (auto* s = std::get_if<store_batch>(&act))
            return store(*s);
        if (auto* rn = std::get_if<read_next_batch>(&act))
            return next(*rn);
        if (auto* p = std::get_if<peer_acked>(&act))
            acked_through = std::max(acked_through, p->through);
        else if (auto* c = std::get_if<close_link>(&act))
            closes.push_back(*c);
        else if (auto* rep = std::get_if<own_reported>(&act))
            reports.push_back(*rep);
        else if (auto* n = std::get_if<news_received>(&act))
            news.push_back(*n);
        return {};
    }
};

/// Runs both machines' actions against each other until both are quiet.
void run(lane& a, lane& b, peer_actions first) {
    std::deque<std::pair<lane*, peer_actions>> work{{&a, std::move(first)}};
    while (!work.empty()) {
        auto [self, out] = std::move(work.front());
        work.pop_front();
        lane* other = self == &a ? &b : &a;
        for (auto& act : out) {
            if (auto* f = std::get_if<send_frame>(&act)) {
                if (!other->m.closing())
                    work.push_back({other, other->m.on_text(f->text)});
                continue;
            }
            auto next = self->answer(act);
            if (!next.empty())
                work.push_back({self, std::move(next)});
        }
    }
}

} // namespace
