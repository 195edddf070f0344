// libFuzzer target: the uploader's reading of the edge function's answers (cloud/wire.cpp): a
// batch answer, a highest-seq answer and an error body. Properties: every batch id is in
// exactly one of results and missing; a result names a batch id; the texts made from the body
// are one line and bounded.
#include "cloud/wire.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace lanesync::cloud;

const std::vector<std::string> batch = {
    "0190a5d3-ac96-7f4b-bc00-000000000001", "0190a5d3-ac96-7f4b-bc00-000000000002",
    "0190a5d3-ac96-7f4b-bc00-000000000003", "0190A5D3-AC96-7F4B-BC00-00000000000A"};

void one_line(const std::string& s, std::size_t max) {
    FUZZ_CHECK(s.size() <= max + 3);
    FUZZ_CHECK(s.find('\n') == std::string::npos && s.find('\r') == std::string::npos);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    std::string body(reinterpret_cast<const char*>(bytes), size);
    auto d = wire::decode_results(body, batch);
    FUZZ_CHECK(d.batch_size == batch.size());
    FUZZ_CHECK(d.results.size() + d.missing.size() == batch.size());
    std::set<std::string> ids(batch.begin(), batch.end()), seen;
    for (const auto& r : d.results) {
        FUZZ_CHECK(ids.count(r.id) == 1);
        FUZZ_CHECK(seen.insert(r.id).second);
        if (r.k == lanesync::outbox::cloud_result::rejected)
            one_line(r.error, 500);
    }
    for (const auto& id : d.missing)
        FUZZ_CHECK(ids.count(id) == 1 && seen.insert(id).second);
    one_line(d.problem(), 300);

    http_result r;
    r.status = size > 0 && bytes[0] < 16 ? 503 : 200;
    r.body = body;
    auto h = wire::read_highest_seq(r, "store-1", "L1");
    FUZZ_CHECK(h.seq.has_value() != !h.error.empty());
    if (h.seq)
        FUZZ_CHECK(*h.seq <= (std::uint64_t{1} << 53));

    one_line(wire::error_text(body), 300);
    one_line(wire::error_text(body, 40), 40);
    return 0;
}
