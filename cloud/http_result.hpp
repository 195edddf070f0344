#pragma once
/// What one HTTP request produced, without Asio: the uploader's policy (policy.hpp) reads it
/// and http_client.hpp returns it.

#include <string>

namespace lanesync::cloud {

/// What one post() produced: an HTTP answer (`fail == none`, any status) or no answer.
struct http_result {
    enum class failure {
        none,         ///< an answer arrived: see status and body
        cancelled,    ///< cancel() was called
        timeout,      ///< the request did not finish within the timeout
        network,      ///< resolve/connect failed, or the connection broke
        tls,          ///< TLS handshake or certificate verification failed
        bad_response, ///< not HTTP, or over the size limits
    };
    failure fail = failure::none;
    int status = 0;
    std::string body;
    std::string error; ///< when fail != none: one line, built from error categories (no secrets)
};

/// Metrics label for a failure ("network", "timeout", "tls", "bad_response").
const char* outcome_label(http_result::failure f);

} // namespace lanesync::cloud
