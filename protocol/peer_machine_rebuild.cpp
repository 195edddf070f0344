// The peer_machine's rules about lane rebuild, trust caps and news (docs/protocol.md "Lane
// rebuild" and "News"): serving a rebuilding peer, the rebuilding side's reports, and the
// news frame in both directions.
#include "protocol/peer_machine.hpp"

namespace lanesync::protocol {

peer_actions peer_machine::on_origin_mark(const std::string& origin, std::uint64_t seq,
                                          const std::string& id) {
    (void)origin;
    (void)seq;
    (void)id;
    return {};
}

peer_actions peer_machine::on_news(news n) {
    (void)n;
    return {};
}

peer_actions peer_machine::on_news_frame(news_frame& n) {
    (void)n;
    return refuse(close_code::policy_violation, "malformed frame: unexpected news",
                  close_cause::malformed);
}

} // namespace lanesync::protocol
