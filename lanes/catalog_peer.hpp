#pragma once
/// Private to lanes/peer_session.cpp: a v3 session's catalog anti-entropy (docs/protocol.md
/// "Catalog"). The rules are protocol/catalog_sync.hpp's; this carries them out: our have
/// after the join, on every catalog change and as the ack of each page; pages served from the
/// outbox reader thread (catalog_since / catalog_keys_after through async_store::read, never
/// SQLite on an io thread); received pages decided (accept_page) and applied
/// (store::apply_catalog with the peer's id as the source).
///
/// Thread contract: `catalog_peer<Session>` lives in its session and runs on its strand; the
/// session makes it a friend. Session must provide machine_, hub_, apply(actions),
/// on_strand(f) and handle() (its session_handle).

#include "base/tuning.hpp"
#include "lanes/hub.hpp"
#include "protocol/catalog_sync.hpp"
#include "protocol/close_code.hpp"
#include "protocol/peer_machine.hpp"

#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lanesync::lanes::detail {

/// Serves a job on the reader thread (catalog_peer.cpp).
std::vector<protocol::served_page> serve_catalog_job(outbox::store& s,
                                                     const protocol::catalog_job& job);
/// Counts and logs what a session sent / received (catalog_peer.cpp).
void note_catalog_sent(const std::string& peer, const std::vector<protocol::catalog_frame>& f);
void note_catalog_ignored(const std::string& peer, const protocol::catalog_frame& f,
                          const std::string& why);
void note_catalog_applied(const std::string& peer, const protocol::catalog_frame& f,
                          const outbox::catalog_outcome& o);
void note_catalog_failed(const std::string& peer, const protocol::catalog_frame& f,
                         const std::string& error);
void register_catalog_metrics();

template <class Session> class catalog_peer {
public:
    explicit catalog_peer(Session& s) : s_(s) {}

    /// Our have to the peer (read our scopes, then the machine sends it: after our ready).
    /// `changed`: our catalog changed, so the pages we may send are planned again.
    void announce(bool changed) {
        if (!active())
            return;
        if (changed)
            sender_.on_local_change();
        if (reading_) {
            again_ = true;
            return;
        }
        reading_ = true;
        // The pages done so far are acked by the have built from this read (after their
        // commits), never by one read before them.
        acks_ = std::exchange(done_, {});
        s_.hub_->outbox().catalog_scopes(
            s_.on_strand([](Session& s, std::vector<protocol::catalog_scope_state> st) {
                s.catalog_.on_scopes(std::move(st));
            }));
    }

    /// This session sends our batches to the peer (hub: one per peer), and our pages too.
    void set_sender(bool on) {
        sending_ = on;
        pump();
    }

    void on_peer_have(protocol::catalog_have_received& a) {
        sender_.on_have(a.have);
        pump();
    }

    /// A page from the peer: decided against our scope's state now, applied or ignored, acked.
    void on_page(protocol::catalog_page_received& a) {
        s_.hub_->outbox().catalog_scopes(
            s_.on_strand([f = std::move(a.page)](
                             Session& s, std::vector<protocol::catalog_scope_state> st) mutable {
                s.catalog_.decide(std::move(f), st);
            }));
    }

private:
    bool active() const { return !s_.machine_.closing() && s_.machine_.version() >= 3; }

    protocol::snapshot_owner owner(const protocol::catalog_scope_state& st) const {
        return s_.hub_->catalog_owner(st, s_.handle());
    }

    void on_scopes(std::vector<protocol::catalog_scope_state> st) {
        reading_ = false;
        if (!active())
            return;
        for (auto n : std::exchange(acks_, {}))
            s_.machine_.on_catalog_done(n);
        std::map<std::string, protocol::snapshot_owner> owners;
        for (const auto& x : st)
            owners[x.scope] = owner(x);
        s_.apply(s_.machine_.on_catalog_have(
            protocol::have_entries(st, [&](const std::string& scope) { return owners[scope]; })));
        if (std::exchange(again_, false))
            announce(false);
        pump();
    }

    void pump() {
        if (!sending_ || !active())
            return;
        auto job = sender_.take_job();
        if (!job)
            return;
        s_.hub_->outbox().read(
            [job = std::move(*job)](outbox::store& st) { return serve_catalog_job(st, job); },
            s_.on_strand(
                [](Session& s, std::exception_ptr error, std::vector<protocol::served_page> pages) {
                    s.catalog_.on_served(error, std::move(pages));
                }));
    }

    void on_served(std::exception_ptr error, std::vector<protocol::served_page> pages) {
        if (error)
            pages.clear(); // logged by the reader; the next have or change tries again
        auto frames = sender_.on_served(std::move(pages));
        if (!active())
            return;
        for (const auto& f : frames) {
            try {
                s_.apply(s_.machine_.on_catalog_send(f));
            } catch (const std::exception& e) { // a stored row that is not JSON: cannot send
                note_catalog_failed(s_.machine_.peer_id(), f, e.what());
                s_.apply(s_.machine_.on_close_request(protocol::close_code::internal_error,
                                                      "catalog row unreadable on sender"));
                return;
            }
        }
        note_catalog_sent(s_.machine_.peer_id(), frames);
        pump();
    }

    void decide(protocol::catalog_frame f, const std::vector<protocol::catalog_scope_state>& st) {
        if (s_.machine_.closing())
            return;
        const protocol::catalog_scope_state* ours = nullptr;
        for (const auto& x : st)
            if (x.scope == f.page.scope)
                ours = &x;
        auto o = ours ? owner(*ours) : protocol::snapshot_owner::none;
        auto verdict = protocol::accept_page(ours, o, f);
        if (verdict != protocol::page_verdict::apply) {
            note_catalog_ignored(s_.machine_.peer_id(), f, protocol::to_string(verdict));
            page_done(f.n);
            return;
        }
        const bool snapshot = f.page.reset || f.page.continues_snapshot;
        if (f.page.reset)
            s_.hub_->claim_catalog_snapshot(f.page.scope, s_.handle());
        auto page = f.page;
        f.page.changes.clear(); // kept for the log line only
        s_.hub_->outbox().apply_catalog(
            std::move(page), s_.machine_.peer_id(),
            s_.on_strand([f = std::move(f), snapshot](Session& s, outbox::catalog_outcome r) {
                s.catalog_.applied(f, snapshot, std::move(r));
            }));
    }

    void applied(const protocol::catalog_frame& f, bool snapshot, outbox::catalog_outcome r) {
        const auto& peer = s_.machine_.peer_id();
        if ((snapshot && f.page.done) || !r.ok)
            s_.hub_->release_catalog_snapshot(f.page.scope, s_.handle());
        if (!r.ok && r.scope.scope.empty()) {
            // Not the scope's state refusing it (that is an ignored page): a storage failure.
            note_catalog_failed(peer, f, r.error);
            s_.apply(s_.machine_.on_close_request(protocol::close_code::internal_error,
                                                  "storage failure on receiver"));
            return;
        }
        if (!r.ok)
            note_catalog_ignored(peer, f, r.error);
        else
            note_catalog_applied(peer, f, r);
        if (r.ok) {
            sender_.on_local_change();
            s_.hub_->catalog_changed(); // the other sessions announce too (debounced)
        }
        page_done(f.n);
    }

    /// The page counts for the ack of our next have read after it, which goes now.
    void page_done(std::uint64_t n) {
        done_.push_back(n);
        announce(false);
    }

    Session& s_;
    protocol::catalog_sender sender_;
    bool sending_ = false;
    bool reading_ = false;
    bool again_ = false;
    std::vector<std::uint64_t> done_; ///< pages applied or ignored, not yet in a have read
    std::vector<std::uint64_t> acks_; ///< ... and those the have being read acks
};

} // namespace lanesync::lanes::detail
