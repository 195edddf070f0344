// cloud/key_format: which keys also go as `Authorization: Bearer` (JWT-shaped only).

#include "cloud/key_format.hpp"

#include <doctest/doctest.h>

#include <string>

using lanesync::cloud::is_jwt_shaped;

TEST_CASE("is_jwt_shaped: a legacy service_role key (three base64url parts) is a JWT") {
    // The shape of Supabase's legacy keys: header.payload.signature, base64url, no padding.
    CHECK(is_jwt_shaped("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                        "eyJyb2xlIjoic2VydmljZV9yb2xlIiwiaXNzIjoic3VwYWJhc2UifQ."
                        "Zm9vYmFyX3NpZ25hdHVyZS1fMDEyMzQ1"));
    CHECK(is_jwt_shaped("a.b.c"));
    CHECK(is_jwt_shaped("A-_.0-9.z_Z"));
}

TEST_CASE("is_jwt_shaped: sb_secret_ keys, hex keys and near misses are not") {
    CHECK_FALSE(is_jwt_shaped("sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"));
    CHECK_FALSE(is_jwt_shaped("sb_publishable_abc123"));
    CHECK_FALSE(is_jwt_shaped(std::string(64, 'f'))); // the local cloud's key
    CHECK_FALSE(is_jwt_shaped(""));
    CHECK_FALSE(is_jwt_shaped("a.b"));     // two parts
    CHECK_FALSE(is_jwt_shaped("a.b.c.d")); // four parts
    CHECK_FALSE(is_jwt_shaped(".b.c"));    // an empty part
    CHECK_FALSE(is_jwt_shaped("a..c"));
    CHECK_FALSE(is_jwt_shaped("a.b."));
    CHECK_FALSE(is_jwt_shaped("a.b.c="));       // padding is not base64url in a JWT
    CHECK_FALSE(is_jwt_shaped("a.b+/.c"));      // base64, not base64url
    CHECK_FALSE(is_jwt_shaped("a.b.c "));       // a blank
    CHECK_FALSE(is_jwt_shaped("a.b.\xc3\xa9")); // non-ASCII
}
