// integrity_check(): SQLite's own checks, the counts table against real counts, and
// invariant 2 (one contiguous range per origin) of docs/outbox.md.
#include "outbox/detail/store_parts.hpp"

#include <map>

namespace lanesync::outbox::detail {

namespace {

using problem_list = std::vector<std::string>;

/// PRAGMA integrity_check and foreign_key_check.
void check_sqlite(connection& db, problem_list& problems) {
    {
        statement s(db, sql::integrity_check);
        use u(s);
        while (u.step())
            if (auto t = u.text(0); t != "ok")
                problems.push_back("integrity_check: " + t);
    }
    statement s(db, sql::foreign_key_check);
    use u(s);
    while (u.step())
        problems.push_back("foreign key: table " + u.text(0) + " rowid " + u.text(1) +
                           " references missing " + u.text(2));
}

/// The counts table (kept by triggers) against real counts.
void check_counts(connection& db, statement& all_counts, problem_list& problems) {
    std::map<std::pair<std::string, std::int64_t>, std::int64_t> real, kept;
    {
        statement s(db, sql::real_counts);
        use u(s);
        while (u.step())
            real[{u.text(0), u.int64(1)}] = u.int64(2);
    }
    {
        use u(all_counts);
        while (u.step())
            if (u.int64(2) != 0)
                kept[{u.text(0), u.int64(1)}] = u.int64(2);
    }
    auto say = [&](const auto& k, std::int64_t says, std::int64_t holds) {
        problems.push_back("counts: origin " + k.first + " state " + std::to_string(k.second) +
                           " says " + std::to_string(says) + ", messages hold " +
                           std::to_string(holds));
    };
    for (const auto& [k, n] : real)
        if (kept[k] != n)
            say(k, kept[k], n);
    for (const auto& [k, n] : kept)
        if (n != 0 && !real.count(k))
            say(k, n, 0);
}

/// Every origin: what is held is one contiguous range ending at hwm, and whatever is missing
/// below it is known to be in the cloud.
void check_ranges(connection& db, statement& all_origins, problem_list& problems) {
    statement range(db, sql::origin_range);
    use o(all_origins);
    while (o.step()) {
        auto origin = o.text(0);
        auto hwm = o.uint64(1), through = o.uint64(2);
        use u(range);
        u.bind(1, origin);
        u.step();
        auto n = u.uint64(2);
        if (n == 0) {
            if (hwm > through)
                problems.push_back("origin " + origin + ": hwm " + std::to_string(hwm) +
                                   " but no message held and cloud_through only " +
                                   std::to_string(through));
            continue;
        }
        auto lo = u.uint64(0), hi = u.uint64(1);
        if (hi != hwm)
            problems.push_back("origin " + origin + ": highest seq held " + std::to_string(hi) +
                               " but hwm " + std::to_string(hwm));
        if (hi - lo + 1 != n)
            problems.push_back("origin " + origin + ": seq gap (" + std::to_string(n) +
                               " messages between " + std::to_string(lo) + " and " +
                               std::to_string(hi) + ")");
        if (lo - 1 > through)
            problems.push_back("origin " + origin + ": seqs below " + std::to_string(lo) +
                               " missing but cloud_through only " + std::to_string(through));
    }
}

} // namespace

std::vector<std::string> sqlite_store::integrity_check() {
    problem_list problems;
    std::lock_guard lk(read_mutex_);
    try {
        read_transaction rt(*read_db_);
        check_sqlite(*read_db_, problems);
        check_counts(*read_db_, r_->all_counts, problems);
        check_ranges(*read_db_, r_->all_origins, problems);
    } catch (const sqlite_error& e) {
        problems.push_back(std::string("sqlite: ") + e.what());
    }
    return problems;
}

} // namespace lanesync::outbox::detail
