#pragma once
/// Which headers carry SUPABASE_SERVICE_KEY (SPEC section 8, docs/uploader.md "The service
/// key"). Hosted Supabase issues two kinds of secret key: the legacy `service_role` key, a JWT,
/// and `sb_secret_...` keys, which are not JWTs. Like supabase-js, the uploader sends the key
/// as `apikey` always and as `Authorization: Bearer` only when it is JWT-shaped: a gateway
/// that verifies the bearer would refuse an `sb_secret_...` key there. Pure: no I/O.

#include <string_view>

namespace lanesync::cloud {

/// True when `key` has the shape of a JWT in compact form: three non-empty base64url parts
/// (`[A-Za-z0-9_-]`, no padding) separated by two dots. Only the shape: nothing is decoded or
/// verified.
bool is_jwt_shaped(std::string_view key);

} // namespace lanesync::cloud
