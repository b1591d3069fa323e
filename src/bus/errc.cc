// SPDX-License-Identifier: Apache-2.0
//
// The std::error_category behind sluice::bus::errc, so bus errors print readable
// messages and compare with std::error_code like any system error.
#include "bus/errc.h"

#include <string>

namespace sluice::bus {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "sluice.bus"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::quota_exceeded:
                return "bus quota exceeded";
            case errc::io_error:
                return "bus I/O error";
            case errc::corruption:
                return "bus data corrupted";
            case errc::closed:
                return "bus closed";
            case errc::not_found:
                return "not found";
            case errc::invalid_argument:
                return "invalid argument";
        }
        return "unknown bus error";
    }
};

}  // namespace

const std::error_category& bus_category() noexcept {
    static const category instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), bus_category()};
}

}  // namespace sluice::bus
