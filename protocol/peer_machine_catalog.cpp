// The peer_machine's rules about the v3 catalog frames (docs/protocol.md "Catalog"): only in a
// v3 session and in its data phase, pages in order and one per scope until acked; what to send
// and what to apply is protocol/catalog_sync.hpp's.
#include "protocol/peer_machine.hpp"

namespace lanesync::protocol {

peer_actions peer_machine::on_catalog_frame(frame& f) {
    const bool have = std::holds_alternative<catalog_have_frame>(f);
    const std::string what = have ? "catalog_have" : "catalog";
    const auto malformed = [this](std::string why) {
        return refuse(close_code::policy_violation, "malformed frame: " + why,
                      close_cause::malformed);
    };
    if (stage_ != stage::joining && stage_ != stage::open)
        return malformed(what + " before the data phase");
    if (!v3())
        return malformed(what + " in a v" + std::to_string(version_) + " session");
    if (!got_ready_)
        return malformed(what + " before the ready");
    peer_actions out;
    if (have) {
        // Our pages answer it, and they go out after our ready: until then the latest waits.
        have_in_ = std::move(std::get<catalog_have_frame>(f));
        if (ready_sent_)
            deliver_catalog_have(out);
        return out;
    }
    auto& page = std::get<catalog_frame>(f);
    if (page.n != next_catalog_in_)
        return malformed("catalog page " + std::to_string(page.n) + " out of order");
    ++next_catalog_in_;
    for (const auto& [n, scope] : catalog_pending_)
        if (scope == page.page.scope)
            return malformed("second catalog page of scope " + scope + " before the ack");
    if (catalog_pending_.size() >= cfg_.limits.max_scopes)
        return malformed("too many catalog pages in flight");
    catalog_pending_[page.n] = page.page.scope;
    out.push_back(catalog_page_received{peer_id_, std::move(page)});
    return out;
}

void peer_machine::on_catalog_done(std::uint64_t n) {
    catalog_pending_.erase(n);
    // Every page below the oldest one still pending is done (pages arrive numbered 1, 2, ...).
    const std::uint64_t upto =
        catalog_pending_.empty() ? next_catalog_in_ - 1 : catalog_pending_.begin()->first - 1;
    catalog_acked_ = std::max(catalog_acked_, upto);
}

peer_actions peer_machine::on_catalog_have(std::vector<catalog_have_entry> scopes) {
    peer_actions out;
    if (closing_ || (version_ > 0 && !v3()))
        return out;
    have_out_ = std::move(scopes);
    if (ready_sent_)
        flush_catalog_have(out);
    return out;
}

void peer_machine::flush_catalog_have(peer_actions& out) {
    if (v3() && have_out_) {
        out.push_back(
            send_frame{encode(catalog_have_frame{catalog_acked_, std::move(*have_out_)})});
        have_out_.reset();
    }
    deliver_catalog_have(out);
}

void peer_machine::deliver_catalog_have(peer_actions& out) {
    if (!have_in_)
        return;
    out.push_back(catalog_have_received{peer_id_, std::move(*have_in_)});
    have_in_.reset();
}

peer_actions peer_machine::on_catalog_send(const catalog_frame& f) {
    peer_actions out;
    if (closing_ || !v3() || !ready_sent_)
        return out;
    out.push_back(send_frame{encode(f)});
    return out;
}

} // namespace lanesync::protocol
