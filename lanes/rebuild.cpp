#include "lanes/rebuild.hpp"

#include "base/log.hpp"
#include "base/text.hpp"
#include "protocol/message.hpp"

#include <algorithm>

namespace lanesync::lanes {
namespace {

constexpr std::string_view rebuilding_prefix = "rebuilding: ";

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

} // namespace

rebuild_controller::rebuild_controller(std::string self, std::vector<std::string> links,
                                       rebuild_effects fx)
    : self_(std::move(self)), links_(std::move(links)), fx_(std::move(fx)) {}

void rebuild_controller::set_links(std::vector<std::string> links) {
    std::lock_guard lock(mutex_);
    links_ = std::move(links);
}

void rebuild_controller::start(const outbox::rebuild_state& st, std::uint64_t own_hwm,
                               std::int64_t now_ms) {
    effects_due due;
    std::string links;
    bool cloud_check = false;
    {
        std::lock_guard lock(mutex_);
        links = text::join(links_);
        incarnation_ = st.incarnation;
        trust_caps_ = st.excluded;
        if (st.active) {
            active_ = true;
            persisted_ = true;
            reason_ = st.reason;
            since_ms_ = st.since_ms ? st.since_ms : now_ms;
            new_progress_locked(own_hwm);
        } else if (!links_.empty()) {
            checking_ = true;
        } else if (cloud_ask_ && own_hwm == 0) {
            // A new (or wiped) outbox and nobody to ask but the cloud: no seq before it told.
            // (An outbox with own messages is not checked: the cloud's highest seq does not say
            // which lower seqs it holds, so it cannot mark any of them cloud_ack.)
            checking_ = cloud_wait_ = cloud_check = true;
            since_ms_ = now_ms;
        }
        evaluate_locked(due);
    }
    if (cloud_check)
        log::info("lane.cloud_check",
                  {{"own_hwm", std::to_string(own_hwm)},
                   {"reason", "no peer is configured: asking the cloud for the highest seq of "
                              "this lane"}});
    if (st.active)
        log::info(
            "lane.rebuild_resumed",
            {{"reason", st.reason}, {"own_hwm", std::to_string(own_hwm)}, {"waiting_for", links}});
    carry_out(std::move(due));
    ask_cloud();
}

void rebuild_controller::start_check_over() {
    effects_due due;
    std::vector<std::string> silent;
    {
        std::lock_guard lock(mutex_);
        if (!checking_)
            return;
        checking_ = false;
        for (const auto& l : links_)
            if (!contains(answered_, l))
                silent.push_back(l);
        evaluate_locked(due);
    }
    log::info("lane.start_check_over", {{"unanswered", text::join(silent)}});
    carry_out(std::move(due));
}

void rebuild_controller::link_answered(const std::string& url) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        if (!checking_ || contains(answered_, url) || !contains(links_, url))
            return;
        answered_.push_back(url);
        evaluate_locked(due);
    }
    carry_out(std::move(due));
}

void rebuild_controller::link_terminal(const std::string& url, const std::string& terminal) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        if (!contains(links_, url) || terminal.empty())
            return;
        terminals_[url] = terminal;
        if (!progress_)
            return;
        // An exclusion by terminal id may now name this link.
        progress_->link_terminal(url, terminal);
        evaluate_locked(due);
    }
    carry_out(std::move(due));
}

void rebuild_controller::new_progress_locked(std::uint64_t own_hwm) {
    progress_.emplace(links_, own_hwm);
    progress_->own_hwm(own_hwm);
    for (const auto& [url, terminal] : terminals_)
        progress_->link_terminal(url, terminal);
}

session_mode rebuild_controller::mode() const {
    std::lock_guard lock(mutex_);
    return {generation_, active_, incarnation_, trust_caps_};
}

bool rebuild_controller::current(std::uint64_t generation) const {
    std::lock_guard lock(mutex_);
    return generation == generation_;
}

void rebuild_controller::outbox_lost(const std::string& peer, std::string reason,
                                     std::uint64_t own_hwm, std::int64_t now_ms) {
    if (std::string_view(reason).starts_with(rebuilding_prefix))
        reason.erase(0, rebuilding_prefix.size());
    effects_due due;
    bool superseded = false;
    {
        std::lock_guard lock(mutex_);
        if (active_)
            return;
        active_ = true;
        // A peer holds our origin: the rebuild restores from it, and its floors and news say
        // what the cloud holds contiguously. The cloud check's highest seq could not say which
        // restored message is in the cloud, so it is not used.
        superseded = cloud_wait_;
        cloud_wait_ = false;
        persisted_ = false;
        begin_failed_ = false;
        reason_ = reason;
        since_ms_ = now_ms;
        new_progress_locked(own_hwm);
        excluded_terminals_.clear();
        conflicted_.clear();
        reported_.clear();
        trigger_ = peer;
        ++generation_;
        evaluate_locked(due);
    }
    if (superseded)
        log::info("lane.cloud_check_superseded", {{"by", "a rebuild from " + peer}});
    log::info("lane.rebuild_started", {{"reason", reason}, {"own_hwm", std::to_string(own_hwm)}});
    persist_begin(reason);
    fx_.close_sessions(std::string(rebuilding_prefix) + reason);
    carry_out(std::move(due));
}

void rebuild_controller::persist_begin(const std::string& reason) {
    fx_.begin(reason, [this](std::string error) {
        effects_due due;
        {
            std::lock_guard lock(mutex_);
            if (!active_)
                return;
            persisted_ = error.empty();
            begin_failed_ = !error.empty();
            if (persisted_)
                evaluate_locked(due); // the rebuild may be done already
        }
        if (!error.empty())
            log::error("lane.rebuild_begin_failed", {{"error", error}});
        carry_out(std::move(due));
    });
}

void rebuild_controller::tick(std::int64_t now_ms) {
    effects_due due;
    std::string again;
    bool ask = false;
    {
        std::lock_guard lock(mutex_);
        ask = cloud_tick_locked(now_ms);
        if (active_ && begin_failed_) {
            begin_failed_ = false;
            again = reason_;
        } else if (active_) {
            evaluate_locked(due); // a finish that failed is due again
        }
    }
    if (ask)
        ask_cloud();
    if (!again.empty())
        persist_begin(again);
    carry_out(std::move(due));
}

void rebuild_controller::stopping() {
    start_check_over();
}

void rebuild_controller::cloud_floor(std::uint64_t through) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        if (!active_ || through <= cloud_floor_)
            return;
        cloud_floor_ = through;
        evaluate_locked(due);
    }
    carry_out(std::move(due));
}

void rebuild_controller::cap_lifted(const std::string& terminal) {
    std::lock_guard lock(mutex_);
    trust_caps_.erase(terminal);
}

void rebuild_controller::report(protocol::rebuild_report r) {
    effects_due due;
    const std::string peer = r.terminal, seq = std::to_string(r.seq), link = r.link;
    std::string text;
    {
        std::lock_guard lock(mutex_);
        if (!active_ || !progress_)
            return;
        if (!r.link.empty() && !r.terminal.empty())
            terminals_[r.link] = r.terminal;
        if (!contains(reported_, r.terminal))
            reported_.push_back(r.terminal);
        progress_->report(std::move(r));
        evaluate_locked(due);
        text = progress_->text();
    }
    log::info("lane.rebuild_report",
              {{"peer", peer}, {"seq", seq}, {"link", link}, {"progress", text}});
    carry_out(std::move(due));
}

void rebuild_controller::own_hwm(std::uint64_t hwm) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        if (!active_ || !progress_)
            return;
        progress_->own_hwm(hwm);
        evaluate_locked(due);
    }
    carry_out(std::move(due));
}

void rebuild_controller::conflict(const std::string& terminal, std::string text) {
    {
        std::lock_guard lock(mutex_);
        if (!active_ || !progress_)
            return;
        if (!terminal.empty() && !contains(conflicted_, terminal))
            conflicted_.push_back(terminal);
        if (contains(progress_->conflicts(), text))
            return;
        progress_->conflict(text);
    }
    log::warn("lane.rebuild_conflict", {{"peer", terminal}, {"conflict", text}});
}

bool rebuild_controller::trigger_pending_locked() const {
    if (trigger_.empty() || contains(reported_, trigger_) ||
        contains(excluded_terminals_, trigger_))
        return false;
    return std::none_of(terminals_.begin(), terminals_.end(),
                        [&](const auto& lt) { return lt.second == trigger_; });
}

bool rebuild_controller::conflicts_block_locked() const {
    auto excluded = progress_->excluded();
    return std::any_of(conflicted_.begin(), conflicted_.end(), [&](const std::string& t) {
        return !contains(excluded, t) && !contains(excluded_terminals_, t);
    });
}

std::string rebuild_controller::resolve_locked(const std::string& item, std::string& url,
                                               std::string& terminal) const {
    if (contains(links_, item)) {
        url = item;
        auto it = terminals_.find(item);
        terminal = it == terminals_.end() ? std::string() : it->second;
        return {};
    }
    if (!protocol::valid_terminal_id(item))
        return "unknown peer: '" + item.substr(0, 64) +
               "' is neither a terminal id nor one of PEER_TERMINALS";
    if (item == self_)
        return "unknown peer: " + item + " is this lane";
    for (const auto& [u, t] : terminals_)
        if (t == item) {
            url = u;
            terminal = item;
            return {};
        }
    // A link that never authenticated since this start has no known terminal id: when exactly
    // one such link is left, the operator's id names it.
    std::vector<std::string> unknown;
    for (const auto& l : links_)
        if (!terminals_.count(l))
            unknown.push_back(l);
    if (unknown.size() == 1) {
        url = unknown.front();
        terminal = item;
        return {};
    }
    if (item == trigger_ && trigger_pending_locked()) {
        url.clear(); // an inbound-only peer
        terminal = item;
        return {};
    }
    if (unknown.empty())
        return "unknown peer: no link in PEER_TERMINALS is " + item;
    return "cannot tell which of " + std::to_string(unknown.size()) +
           " links that never connected is " + item + ": give its PEER_TERMINALS URL";
}

exclude_result rebuild_controller::exclude(const std::vector<std::string>& without) {
    if (std::find(without.begin(), without.end(), "cloud") != without.end())
        return skip_cloud_check(without.size());
    effects_due due;
    std::vector<std::string> names;
    {
        std::lock_guard lock(mutex_);
        if (!active_ && cloud_wait_)
            return {400, "the lane waits for the cloud's highest seq, not for peers: leave out "
                         "\"cloud\" (lanesync rebuild --without cloud) to start at seq 1"};
        if (!active_ || !progress_)
            return {409, "not rebuilding"};
        std::vector<std::pair<std::string, std::string>> resolved;
        for (const auto& item : without) {
            std::string url, terminal;
            if (auto why = resolve_locked(item, url, terminal); !why.empty())
                return {400, why};
            resolved.emplace_back(url, terminal);
        }
        for (const auto& [url, terminal] : resolved) {
            if (!terminal.empty()) {
                // The operator's name for a link that never connected shows in status.
                if (!url.empty())
                    progress_->link_terminal(url, terminal);
                if (!contains(excluded_terminals_, terminal))
                    excluded_terminals_.push_back(terminal);
            }
            progress_->exclude(url.empty() ? terminal : url);
            names.push_back(terminal.empty() ? url : terminal);
        }
        evaluate_locked(due);
    }
    if (!names.empty())
        log::info("lane.rebuild_excluded", {{"peers", text::join(names)}});
    carry_out(std::move(due));
    return {200, {}};
}

void rebuild_controller::admit(admit_fn done) {
    std::optional<rebuild_view> answer;
    {
        std::lock_guard lock(mutex_);
        if (checking_ && !active_) {
            held_.push_back(std::move(done));
            return;
        }
        if (active_ || cloud_wait_)
            answer = view_locked();
    }
    done(std::move(answer));
}

rebuild_view rebuild_controller::view() const {
    std::lock_guard lock(mutex_);
    return view_locked();
}

bool rebuild_controller::rebuilding() const {
    std::lock_guard lock(mutex_);
    return active_ || (cloud_wait_ && !checking_);
}

rebuild_view rebuild_controller::view_locked() const {
    rebuild_view v;
    v.active = active_;
    v.start_check = checking_;
    v.incarnation = incarnation_;
    v.trust_caps = trust_caps_;
    if (!active_ && cloud_wait_)
        cloud_view_locked(v);
    if (!active_ || !progress_)
        return v;
    v.reason = reason_;
    v.since_ms = since_ms_;
    v.restored = progress_->restored();
    v.target = progress_->target();
    v.from = progress_->from();
    v.waiting_for = progress_->waiting_for();
    if (trigger_pending_locked())
        v.waiting_for.push_back(trigger_);
    v.excluded = progress_->excluded();
    v.conflicts = progress_->conflicts();
    v.progress = progress_->text();
    return v;
}

void rebuild_controller::evaluate_locked(effects_due& due) {
    bool check_done = checking_ && !cloud_wait_ &&
                      std::all_of(links_.begin(), links_.end(),
                                  [&](const auto& l) { return contains(answered_, l); });
    if (check_done || active_)
        checking_ = false;
    if (!checking_ && !held_.empty()) {
        due.release = std::move(held_);
        held_.clear();
        if (active_ || cloud_wait_)
            due.answer = view_locked();
    }
    if (active_ && persisted_ && progress_ && !finishing_ && !raising_ && progress_->done() &&
        !conflicts_block_locked() && !trigger_pending_locked() && cloud_floor_ > progress_->hwm() &&
        fx_.raise_floor) {
        raising_ = true; // restored what the peers hold; now skip what only the cloud holds
        due.raise_floor = cloud_floor_;
        return;
    }
    if (active_ && persisted_ && progress_ && !finishing_ && !raising_ && progress_->done() &&
        !conflicts_block_locked() && !trigger_pending_locked()) {
        finishing_ = true;
        due.finish = true;
        due.finish_excluded = excluded_terminals_;
    }
}

void rebuild_controller::carry_out(effects_due due) {
    for (auto& f : due.release)
        f(due.answer);
    if (due.raise_floor > 0) {
        log::info("lane.rebuild_cloud_floor", {{"cloud_through", std::to_string(due.raise_floor)}});
        fx_.raise_floor(due.raise_floor, [this](std::string error, std::uint64_t hwm) {
            effects_due next;
            {
                std::lock_guard lock(mutex_);
                raising_ = false;
                if (error.empty() && active_ && progress_)
                    progress_->own_hwm(hwm);
                if (error.empty())
                    evaluate_locked(next); // else the next tick tries again
            }
            if (!error.empty())
                log::error("lane.rebuild_cloud_floor_failed", {{"error", error}});
            carry_out(std::move(next));
        });
        return;
    }
    if (!due.finish)
        return;
    log::info("lane.rebuild_done", {{"excluded", text::join(due.finish_excluded)}});
    fx_.finish(std::move(due.finish_excluded),
               [this](std::string error, outbox::rebuild_state st) { finished(error, st); });
}

void rebuild_controller::finished(const std::string& error, const outbox::rebuild_state& st) {
    {
        std::lock_guard lock(mutex_);
        finishing_ = false;
        if (!error.empty()) {
            // Stays rebuilding; the next report or POST /v1/rebuild tries again.
        } else {
            active_ = false;
            reason_.clear();
            progress_.reset();
            excluded_terminals_.clear();
            conflicted_.clear();
            incarnation_ = st.incarnation;
            trust_caps_ = st.excluded;
            ++generation_;
        }
    }
    if (!error.empty()) {
        log::error("lane.rebuild_finish_failed", {{"error", error}});
        return;
    }
    log::info("lane.rebuild_finished", {{"incarnation", st.incarnation}});
    fx_.close_sessions("rebuild finished");
}

} // namespace lanesync::lanes
