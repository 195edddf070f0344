// integrity_check(): SQLite's own checks, the counts table against real counts, and
// invariant 2 (every seq above cloud_through held up to hwm) of docs/outbox.md.
#include "outbox/detail/store_parts.hpp"

#include <map>
#include <tuple>

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

/// The backlog_counts table (kept by triggers) against the pending and peer_ack rows.
void check_backlog(connection& db, problem_list& problems) {
    using key = std::tuple<std::string, std::int64_t, std::int64_t>;
    std::map<key, std::int64_t> real, kept;
    for (auto [text, into] :
         {std::pair{sql::real_backlog, &real}, std::pair{sql::all_backlog, &kept}}) {
        statement s(db, text);
        use u(s);
        while (u.step())
            if (auto n = u.int64(3); n != 0)
                (*into)[{u.text(0), u.int64(1), u.int64(2)}] = n;
    }
    auto say = [&](const key& k, std::int64_t says, std::int64_t holds) {
        problems.push_back("backlog_counts: origin " + std::get<0>(k) + " state " +
                           std::to_string(std::get<1>(k)) + " priority " +
                           std::to_string(std::get<2>(k)) + " says " + std::to_string(says) +
                           ", messages hold " + std::to_string(holds));
    };
    for (const auto& [k, n] : real)
        if (kept[k] != n)
            say(k, kept[k], n);
    for (const auto& [k, n] : kept)
        if (n != 0 && !real.count(k))
            say(k, n, 0);
}

/// Every origin: every seq above cloud_through up to hwm is held, nothing above hwm is held.
/// What is missing is known to be in the cloud: pruned prefixes, and seqs a floor jumped over
/// (a peer pruned them after they reached the cloud; a restore of an old file can leave such a
/// hole above the messages it still held, all of them cloud_ack).
void check_ranges(connection& db, statement& all_origins, problem_list& problems) {
    statement range(db, sql::origin_range);
    statement above(db, sql::held_above);
    use o(all_origins);
    while (o.step()) {
        auto origin = o.text(0);
        auto hwm = o.uint64(1), through = o.uint64(2);
        use u(range);
        u.bind(1, origin);
        u.step();
        if (u.uint64(2) > 0 && u.uint64(1) > hwm)
            problems.push_back("origin " + origin + ": highest seq held " +
                               std::to_string(u.uint64(1)) + " but hwm " + std::to_string(hwm));
        if (hwm <= through)
            continue;
        use a(above);
        a.bind(1, origin).bind(2, through);
        a.step();
        auto held = a.uint64(0);
        if (held != hwm - through)
            problems.push_back("origin " + origin + ": seq gap (" + std::to_string(held) +
                               " messages held above cloud_through " + std::to_string(through) +
                               ", hwm " + std::to_string(hwm) + ")");
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
        check_backlog(*read_db_, problems);
        check_ranges(*read_db_, r_->all_origins, problems);
    } catch (const sqlite_error& e) {
        problems.push_back(std::string("sqlite: ") + e.what());
    }
    return problems;
}

} // namespace lanesync::outbox::detail
