#pragma once
// Two peer_machines with in-memory outboxes *and catalogs* (peer_machine_catalog_test.cpp): a
// `cat_lane` answers the v3 catalog actions the way lanes/catalog_peer.cpp does (catalog_sender,
// serve_job, accept_page, apply, have_entries), and run_catalog() plays both lanes.

#include "peer_machine_lanes.hpp"
#include "protocol/catalog_sync.hpp"

#include <set>

namespace {

[[maybe_unused]] void (*const run_messages_only)(lane&, lane&, peer_actions) = run;

/// A lane's catalog as the outbox keeps it (docs/downstream.md "Lane"): per key the latest row,
/// per scope its state; apply() follows store::apply_catalog's contract.
struct mem_catalog {
    std::map<std::string, catalog_scope_state> scopes;
    std::map<std::string, std::map<std::string, catalog_change>> rows;
    std::map<std::string, std::set<std::string>> marks; ///< keys seen by the snapshot under way

    void put(const std::string& scope, const std::string& key, std::int64_t v, bool deleted) {
        catalog_change c{
            scope, key, v, deleted, deleted ? "null" : "{\"v\":" + std::to_string(v) + "}", 0};
        rows[scope][key] = c;
        auto& s = scopes[scope];
        s.scope = scope;
        s.through = std::max(s.through, v);
    }
    std::vector<catalog_scope_state> states() const {
        std::vector<catalog_scope_state> out;
        for (const auto& [k, s] : scopes)
            out.push_back(s);
        return out;
    }
    const catalog_scope_state* state(const std::string& scope) const {
        auto it = scopes.find(scope);
        return it == scopes.end() ? nullptr : &it->second;
    }
    /// The live keys of a scope with their versions.
    std::map<std::string, std::int64_t> live(const std::string& scope) const {
        std::map<std::string, std::int64_t> out;
        if (auto it = rows.find(scope); it != rows.end())
            for (const auto& [k, c] : it->second)
                if (!c.deleted)
                    out[k] = c.version;
        return out;
    }
    void apply(const catalog_page& p, const std::string& source) {
        auto& s = scopes[p.scope];
        s.scope = p.scope;
        if (p.reset || p.continues_snapshot || !s.snapshot_active)
            s.source = source;
        auto& r = rows[p.scope];
        if (p.reset) {
            s.snapshot_active = true;
            marks[p.scope].clear();
        }
        const bool snap = p.reset || p.continues_snapshot;
        for (const auto& c : p.changes) {
            if (snap)
                marks[p.scope].insert(c.key);
            auto it = r.find(c.key);
            if (it == r.end() || c.version > it->second.version)
                r[c.key] = c;
        }
        s.head = std::max(s.head, p.head);
        if (!snap) {
            s.through = std::max(s.through, p.through);
            return;
        }
        if (!p.done)
            return;
        for (auto& [k, c] : r)
            if (!c.deleted && !marks[p.scope].contains(k) && c.version <= p.through)
                c = catalog_change{p.scope, k, p.through, true, "null", 0};
        s.snapshot_active = false;
        s.through = p.through;
    }
    catalog_reader reader() {
        return catalog_reader{
            [this](const std::string& scope, std::int64_t since, std::size_t limit) {
                std::vector<catalog_change> out;
                for (const auto& [k, c] : rows[scope])
                    if (c.version > since)
                        out.push_back(c);
                std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
                    return a.version < b.version;
                });
                if (out.size() > limit)
                    out.resize(limit);
                return out;
            },
            [this](const std::string& scope, const std::string& after, std::size_t limit) {
                std::vector<catalog_change> out;
                for (const auto& [k, c] : rows[scope])
                    if (k > after && !c.deleted && out.size() < limit)
                        out.push_back(c);
                return out;
            }};
    }
};

struct cat_lane {
    lane base;
    mem_catalog cat;
    catalog_sender sender;
    std::set<std::string> owned;           ///< scopes whose snapshot this session's peer serves us
    std::set<std::string> cloud_snapshots; ///< scopes mid-snapshot from the cloud
    catalog_sync_limits lim;
    std::vector<catalog_frame> received;
    std::vector<page_verdict> verdicts;
    std::size_t max_in_flight = 0;

    cat_lane(const std::string& me, peer_role role, int version, int offer = 0)
        : base(me, role, [&] {
              auto c = config(me);
              c.version = version;
              c.offer_version = offer;
              return c;
          }()) {}

    snapshot_owner owner(const std::string& scope) const {
        auto s = cat.state(scope);
        if (!s || !s->snapshot_active)
            return snapshot_owner::none;
        if (s->source == "cloud")
            return snapshot_owner::cloud;
        return owned.contains(scope) ? snapshot_owner::this_session : snapshot_owner::orphan;
    }
    peer_actions have() {
        return base.m.on_catalog_have(
            have_entries(cat.states(), [this](const std::string& s) { return owner(s); }));
    }
    peer_actions pump() {
        peer_actions out;
        while (auto job = sender.take_job()) {
            for (auto& f : sender.on_served(serve_job(*job, cat.states(), cat.reader(), lim))) {
                auto sent = base.m.on_catalog_send(f);
                out.insert(out.end(), sent.begin(), sent.end());
            }
            max_in_flight = std::max(max_in_flight, sender.in_flight());
        }
        return out;
    }
    peer_actions on_page(const catalog_frame& f) {
        received.push_back(f);
        auto v = accept_page(cat.state(f.page.scope), owner(f.page.scope), f);
        verdicts.push_back(v);
        if (v == page_verdict::apply) {
            if (f.page.reset)
                owned.insert(f.page.scope);
            cat.apply(f.page, base.m.peer_id());
            if ((f.page.reset || f.page.continues_snapshot) && f.page.done)
                owned.erase(f.page.scope);
            sender.on_local_change();
        }
        base.m.on_catalog_done(f.n);
        auto out = have();
        auto more = pump();
        out.insert(out.end(), more.begin(), more.end());
        return out;
    }
    peer_actions answer(peer_action& act) {
        if (auto* h = std::get_if<catalog_have_received>(&act)) {
            sender.on_have(h->have);
            return pump();
        }
        if (auto* p = std::get_if<catalog_page_received>(&act))
            return on_page(p->page);
        return base.answer(act);
    }
};

/// Frame types sent on the wire, both ways.
struct wire_log {
    std::map<std::string, int> types;
    void note(const std::string& text) {
        auto at = text.find("\"type\":\"");
        if (at != std::string::npos) {
            auto end = text.find('"', at + 8);
            ++types[text.substr(at + 8, end - at - 8)];
        }
    }
};

/// Both lanes announce their catalog (the session does it at join), then play until quiet.
void run_catalog(cat_lane& a, cat_lane& b, wire_log* wire = nullptr) {
    std::deque<std::pair<cat_lane*, peer_actions>> work;
    work.push_back({&b, b.have()});
    work.push_back({&a, a.have()});
    work.push_back({&a, a.base.m.start()});
    while (!work.empty()) {
        auto [self, out] = std::move(work.front());
        work.pop_front();
        cat_lane* other = self == &a ? &b : &a;
        for (auto& act : out) {
            if (auto* f = std::get_if<send_frame>(&act)) {
                if (wire)
                    wire->note(f->text);
                if (!other->base.m.closing())
                    work.push_back({other, other->base.m.on_text(f->text)});
                continue;
            }
            auto next = self->answer(act);
            if (!next.empty())
                work.push_back({self, std::move(next)});
        }
    }
}

} // namespace
