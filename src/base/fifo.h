// SPDX-License-Identifier: Apache-2.0
//
// A first-in first-out queue on a vector with a head index. std::deque allocates a map and a
// 512-byte node even when empty; with three queues per connection that dominated the memory
// of an idle connection. This one allocates nothing until used, gives the memory back when
// it drains, and keeps push_back/pop_front amortised O(1).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace sluice {

template <typename T>
class fifo {
public:
    using iterator = typename std::vector<T>::iterator;
    using const_iterator = typename std::vector<T>::const_iterator;

    bool empty() const { return head_ == items_.size(); }
    size_t size() const { return items_.size() - head_; }
    T& front() { return items_[head_]; }
    const T& front() const { return items_[head_]; }
    void push_back(T&& v) { items_.push_back(std::move(v)); }
    void push_back(const T& v) { items_.push_back(v); }

    // REQUIRES: !empty().
    void pop_front() {
        items_[head_] = T{};  // release what the element holds now, not at compaction
        ++head_;
        if (head_ == items_.size()) {
            clear();
        } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

    // REQUIRES: !empty().
    T& back() { return items_.back(); }
    void pop_back() {
        items_.pop_back();
        if (head_ == items_.size()) clear();
    }

    void clear() {
        items_.clear();
        head_ = 0;
        if (items_.capacity() > k_keep_capacity) std::vector<T>().swap(items_);
    }

    iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    iterator end() { return items_.end(); }
    const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    const_iterator end() const { return items_.end(); }

private:
    static constexpr size_t k_keep_capacity = 64;
    std::vector<T> items_;
    size_t head_ = 0;
};

}  // namespace sluice
