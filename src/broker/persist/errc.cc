// SPDX-License-Identifier: Apache-2.0
//
// The std::error_category behind sluice::broker::persist::errc, so state-store errors
// print readable messages and compare with std::error_code like any system error.
#include "broker/persist/errc.h"

#include <string>

namespace sluice::broker::persist {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "sluice.persist"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::io_error:
                return "state store I/O error";
            case errc::corruption:
                return "state store data corrupted";
            case errc::unsupported_version:
                return "state store format version not supported";
            case errc::closed:
                return "state store closed";
            case errc::locked:
                return "state store directory in use by another process";
        }
        return "unknown state store error";
    }
};

}  // namespace

const std::error_category& persist_category() noexcept {
    static const category instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), persist_category()};
}

}  // namespace sluice::broker::persist
