// SPDX-License-Identifier: Apache-2.0
#include "net/stream_layer.h"

namespace sluice::net {
namespace {

class stacked_layer final : public stream_layer {
public:
    stacked_layer(std::unique_ptr<stream_layer> outer, std::unique_ptr<stream_layer> inner)
        : outer_(std::move(outer)), inner_(std::move(inner)) {}

    bool on_wire(std::string_view wire, std::string& app, std::string& wire_out) override {
        middle_.clear();
        bool outer_ok = outer_->on_wire(wire, middle_, wire_out);
        reply_.clear();
        bool inner_ok = inner_->on_wire(middle_, app, reply_);
        if (!reply_.empty()) outer_->on_app(reply_, wire_out);
        if (!inner_ok) {
            error_ = inner_->error();
            return false;
        }
        if (!outer_ok) {
            error_ = outer_->error();
            return false;
        }
        return true;
    }

    void on_app(std::string_view app, std::string& wire_out) override {
        middle_.clear();
        inner_->on_app(app, middle_);
        outer_->on_app(middle_, wire_out);
    }

    void on_close(std::string& wire_out) override {
        middle_.clear();
        inner_->on_close(middle_);
        if (!middle_.empty()) outer_->on_app(middle_, wire_out);
        outer_->on_close(wire_out);
    }

    const std::string& error() const override { return error_; }
    const std::string& peer_identity() const override { return outer_->peer_identity(); }

private:
    std::unique_ptr<stream_layer> outer_;
    std::unique_ptr<stream_layer> inner_;
    std::string middle_;  // outer's app bytes = inner's wire bytes
    std::string reply_;
    std::string error_;
};

}  // namespace

std::unique_ptr<stream_layer> stack_layers(std::unique_ptr<stream_layer> outer, std::unique_ptr<stream_layer> inner) {
    return std::make_unique<stacked_layer>(std::move(outer), std::move(inner));
}

}  // namespace sluice::net
