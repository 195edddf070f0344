// libFuzzer target: the body of POST /v1/messages (protocol/publish.cpp), one message or a
// batch, and the CLI's form of the same checks. Properties: every accepted message has a valid
// topic, a normalized id when it has one and canonical data (a JSON object, not too deep).
#include "protocol/publish.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using namespace lanesync::protocol;

void check_valid(const publish_request& r) {
    FUZZ_CHECK(valid_topic(r.topic));
    if (r.id)
        FUZZ_CHECK(valid_uuid(*r.id) && normalize_uuid(*r.id) == *r.id);
    auto data = nlohmann::json::parse(r.data, nullptr, false);
    FUZZ_CHECK(data.is_object());
    FUZZ_CHECK(!json_too_deep(data));
    FUZZ_CHECK(canonical_json(data) == r.data);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(bytes), size);
    auto body_result = parse_publish_body(body, 100);
    if (body_result.ok()) {
        const auto& b = body_result.value();
        for (const auto& r : b.requests)
            check_valid(r);
        if (b.batch && b.batch_size <= 100)
            FUZZ_CHECK(b.requests.size() + b.errors.size() == b.batch_size);
    }
    auto one = parse_publish_request(body);
    if (one.ok())
        check_valid(one.value());
    // The CLI's form: the same bytes as data, with a fixed topic.
    auto cli = make_publish_request("sale.created", body, std::nullopt, std::nullopt);
    if (cli.ok())
        check_valid(cli.value());
    return 0;
}
