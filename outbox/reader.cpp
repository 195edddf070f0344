// The reader thread (post_read) and the health snapshot of the SQLite store.
#include "outbox/detail/store_impl.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"
#include "protocol/message.hpp"

#include <sys/statvfs.h>

#include <filesystem>

namespace lanesync::outbox::detail {

// ---- reader thread --------------------------------------------------------------------------

void sqlite_store::post_read(std::function<void()> job) {
    {
        std::unique_lock lk(reader_mutex_);
        if (!reader_stopping_) {
            reads_.push_back(std::move(job));
            lk.unlock();
            reader_cv_.notify_one();
            return;
        }
    }
    // Only while the store is being destroyed (a job posting another job): run it here.
    try {
        job();
    } catch (const std::exception& e) {
        log::error("outbox.read_job_threw", {{"error", e.what()}});
    }
}

void sqlite_store::reader_loop() {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lk(reader_mutex_);
            reader_cv_.wait(lk, [&] { return reader_stopping_ || !reads_.empty(); });
            if (reads_.empty())
                return; // stopping and drained
            job = std::move(reads_.front());
            reads_.pop_front();
        }
        try {
            job();
        } catch (const std::exception& e) {
            log::error("outbox.read_job_threw", {{"error", e.what()}});
        } catch (...) {
            log::error("outbox.read_job_threw", {{"error", "unknown exception"}});
        }
    }
}

void sqlite_store::stop_reader() {
    {
        std::lock_guard lk(reader_mutex_);
        reader_stopping_ = true;
    }
    reader_cv_.notify_all();
    if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id())
        reader_.join();
}

// ---- health ---------------------------------------------------------------------------------

void sqlite_store::note_group_start() {
    std::lock_guard lk(health_mutex_);
    busy_since_ms_ = protocol::now_ms();
}

void sqlite_store::note_group_end(bool ok, const std::string& error, bool full) {
    auto now = protocol::now_ms();
    std::lock_guard lk(health_mutex_);
    busy_since_ms_.reset();
    last_group_ok_ = ok && !full;
    last_group_full_ = full;
    if (ok && full) {
        last_commit_at_ms_ = now; // it fitted, but the disk still counts as full
        last_group_error_ = error;
    } else if (ok) {
        last_commit_at_ms_ = now;
        last_group_error_.clear();
    } else {
        last_failure_at_ms_ = now;
        last_group_error_ = error;
    }
}

bool sqlite_store::space_low(std::string& why) const {
    auto dir = std::filesystem::path(path_).parent_path();
    if (dir.empty())
        dir = ".";
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0)
        return false; // cannot tell: let the next write find out
    auto free_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    if (free_bytes >= tuning::outbox_free_space_after_full)
        return false;
    why = "database or disk is full (" + std::to_string(free_bytes / 1024) + " KiB free in " +
          dir.string() + ")";
    return true;
}

outbox::health sqlite_store::health() {
    outbox::health h;
    bool closed = false;
    {
        std::lock_guard lk(queue_mutex_);
        closed = closed_;
        h.queued = queue_.size();
    }
    bool probe = false;
    {
        std::lock_guard lk(health_mutex_);
        h.last_commit_at_ms = last_commit_at_ms_;
        h.last_failure_at_ms = last_failure_at_ms_;
        h.busy_since_ms = busy_since_ms_;
        if (read_only_) {
            h.error = "outbox is read-only";
        } else if (closed) {
            h.error = "outbox closed";
        } else if (!last_group_ok_) {
            h.error = last_group_error_;
            h.disk_full = last_group_full_;
            probe = !probe_queued_;
            probe_queued_ = true;
        } else {
            h.writable = true;
        }
    }
    if (probe)
        queue_probe();
    return h;
}

} // namespace lanesync::outbox::detail
