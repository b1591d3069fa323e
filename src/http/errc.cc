// SPDX-License-Identifier: Apache-2.0
#include "http/errc.h"

#include <string>

namespace sluice::http {
namespace {

class api_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "sluice.http.api"; }
    std::string message(int v) const override {
        switch (static_cast<api_errc>(v)) {
            case api_errc::database_unavailable:
                return "database unavailable";
            case api_errc::query_failed:
                return "query failed";
            case api_errc::query_timeout:
                return "query timed out";
            case api_errc::bad_request:
                return "bad request";
            case api_errc::unsafe_path:
                return "unsafe path";
        }
        return "unknown api error";
    }
};

}  // namespace

const std::error_category& api_category() {
    static const api_category_impl instance;
    return instance;
}

std::error_code make_error_code(api_errc e) {
    return {static_cast<int>(e), api_category()};
}

}  // namespace sluice::http
