#include "outbox/async.hpp"

#include "base/log.hpp"

namespace lanesync::outbox::detail {

void log_read_failure(const char* read, std::exception_ptr e) noexcept {
    try {
        std::string why = "unknown exception";
        try {
            if (e)
                std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            why = ex.what();
        } catch (...) {
        }
        log::error("outbox.read_failed", {{"read", read}, {"error", why}});
    } catch (...) {
    }
}

} // namespace lanesync::outbox::detail
