// SPDX-License-Identifier: Apache-2.0
//
// The std::error_category behind sluice::store::errc, so store errors print readable
// messages and compare with std::error_code like any system error.
#include "store/errc.h"

#include <string>

namespace sluice::store {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "sluice.store"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::connection_failed:
                return "database connection failed";
            case errc::query_failed:
                return "database query failed";
            case errc::constraint_violation:
                return "database constraint violated";
            case errc::invalid_data:
                return "invalid data for the database";
            case errc::conflict:
                return "serialization conflict or deadlock";
            case errc::resource_exhausted:
                return "database resources exhausted";
            case errc::stale_offset:
                return "offset does not advance the stored offset";
            case errc::schema_too_new:
                return "database schema is newer than this Sluice";
            case errc::schema_missing:
                return "database schema not migrated";
            case errc::invalid_argument:
                return "invalid argument";
            case errc::injected_failure:
                return "injected failure";
            case errc::layout_unavailable:
                return "store.layout is timescale but TimescaleDB cannot load (add shared_preload_libraries = "
                       "'timescaledb' to postgresql.conf and restart PostgreSQL)";
            case errc::layout_mismatch:
                return "the database was migrated with another store.layout";
            case errc::timeout:
                return "database statement timed out";
        }
        return "unknown store error";
    }
};

}  // namespace

const std::error_category& store_category() noexcept {
    static const category instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), store_category()};
}

bool is_retryable(std::error_code ec) noexcept {
    if (ec.category() != store_category()) return false;
    switch (static_cast<errc>(ec.value())) {
        case errc::connection_failed:
        case errc::conflict:
        case errc::resource_exhausted:
            return true;
        default:
            return false;
    }
}

}  // namespace sluice::store
