#pragma once
/// A tiny result type: a value, or an error text meant for the caller (safe to show a client).

#include <optional>
#include <string>
#include <utility>

namespace lanesync::protocol {

template <class T> class result {
public:
    result(T value) : value_(std::move(value)) {}
    static result failure(std::string why) { return result(std::move(why), 0); }

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }
    T& value() { return *value_; }
    const T& value() const { return *value_; }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    const std::string& error() const { return error_; }

private:
    result(std::string why, int) : error_(std::move(why)) {}
    std::optional<T> value_;
    std::string error_;
};

} // namespace lanesync::protocol
