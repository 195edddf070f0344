#include "outbox/async.hpp"

#include "base/log.hpp"
#include "base/text.hpp"

namespace lanesync::outbox::detail {

void log_read_failure(const char* read, std::exception_ptr e) noexcept {
    try {
        log::error("outbox.read_failed", {{"read", read}, {"error", text::what(e)}});
    } catch (...) { // logging must not throw out of a completion
    }
}

} // namespace lanesync::outbox::detail
