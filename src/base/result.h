// SPDX-License-Identifier: Apache-2.0
//
// result<T>: a value or the std::error_code that explains why there is none.
// Errors caused by peers or the environment are values in Sluice (docs/conventions.md, "Errors");
// exceptions are for the control plane only. We carry our own small type rather
// than std::expected because clang-14 (the fuzz preset) cannot use libstdc++'s
// <expected>.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace sluice {

template <typename T>
class [[nodiscard]] result {
public:
    // Implicit on purpose: `return value;` and `return make_error_code(e);` both read well.
    result(T value) : state_(std::in_place_index<0>, std::move(value)) {}    // NOLINT
    result(std::error_code error) : state_(std::in_place_index<1>, error) {  // NOLINT
        SLUICE_ASSERT(error, "a result error must be non-zero");
    }
    template <typename E, typename = std::enable_if_t<std::is_error_code_enum_v<E>>>
    result(E error) : result(std::error_code(make_error_code(error))) {}  // NOLINT

    bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & {
        check();
        return std::get<0>(state_);
    }
    const T& value() const& {
        check();
        return std::get<0>(state_);
    }
    T&& value() && {
        check();
        return std::get<0>(std::move(state_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    std::error_code error() const noexcept { return has_value() ? std::error_code{} : std::get<1>(state_); }

private:
    void check() const {
        SLUICE_CHECK(has_value(), "value() on an error result: %s", std::get<1>(state_).message().c_str());
    }
    std::variant<T, std::error_code> state_;
};

// result<void>: success, or an error.
template <>
class [[nodiscard]] result<void> {
public:
    result() = default;
    result(std::error_code error) : error_(error) {}  // NOLINT
    template <typename E, typename = std::enable_if_t<std::is_error_code_enum_v<E>>>
    result(E error) : error_(make_error_code(error)) {}  // NOLINT

    bool has_value() const noexcept { return !error_; }
    explicit operator bool() const noexcept { return has_value(); }
    std::error_code error() const noexcept { return error_; }

private:
    std::error_code error_;
};

inline result<void> ok() {
    return {};
}

}  // namespace sluice
