// SPDX-License-Identifier: Apache-2.0
//
// Locking that the compiler checks. Clang's thread-safety analysis (-Wthread-safety, see
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html) proves at compile time that data
// marked SLUICE_GUARDED_BY(m) is only touched with `m` held and that functions marked
// SLUICE_REQUIRES(m) are only called with it held. The macros expand to Clang's attributes
// under Clang and to nothing otherwise; the fuzz preset (clang) turns violations into errors.
//
// libstdc++'s std::mutex is not annotated as a capability, so guarded data uses the wrappers
// below: `sluice::mutex` with `sluice::mutex_lock`, and `sluice::shared_mutex` with
// `sluice::writer_lock` / `sluice::reader_lock`. They cost nothing over the std types.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define SLUICE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SLUICE_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are locks. `x` names the kind in diagnostics ("mutex").
#define SLUICE_CAPABILITY(x) SLUICE_THREAD_ANNOTATION(capability(x))
// On an RAII class that holds a capability from construction to destruction.
#define SLUICE_SCOPED_CAPABILITY SLUICE_THREAD_ANNOTATION(scoped_lockable)
// On a data member: read or written only with `x` held (reads: at least shared).
#define SLUICE_GUARDED_BY(x) SLUICE_THREAD_ANNOTATION(guarded_by(x))
// On a pointer member: the pointee is read or written only with `x` held.
#define SLUICE_PT_GUARDED_BY(x) SLUICE_THREAD_ANNOTATION(pt_guarded_by(x))
// On a function: callers hold these capabilities (exclusively).
#define SLUICE_REQUIRES(...) SLUICE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: callers must not hold these (it takes them itself).
#define SLUICE_EXCLUDES(...) SLUICE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it acquires / releases these (no argument: the object itself).
#define SLUICE_ACQUIRE(...) SLUICE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define SLUICE_ACQUIRE_SHARED(...) SLUICE_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define SLUICE_RELEASE(...) SLUICE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define SLUICE_RELEASE_SHARED(...) SLUICE_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
// On a function whose locking the analysis cannot follow; say why next to it.
#define SLUICE_NO_THREAD_SAFETY_ANALYSIS SLUICE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace sluice {

// std::mutex as a capability. Lock it through mutex_lock.
class SLUICE_CAPABILITY("mutex") mutex {
public:
    void lock() SLUICE_ACQUIRE() { m_.lock(); }
    void unlock() SLUICE_RELEASE() { m_.unlock(); }

private:
    friend class mutex_lock;
    std::mutex m_;
};

// Holds a sluice::mutex for its scope, like std::lock_guard.
class SLUICE_SCOPED_CAPABILITY mutex_lock {
public:
    explicit mutex_lock(mutex& m) SLUICE_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~mutex_lock() SLUICE_RELEASE() {
        if (held_) m_.unlock();
    }
    mutex_lock(const mutex_lock&) = delete;
    mutex_lock& operator=(const mutex_lock&) = delete;

    // Lets go of the mutex inside the scope (e.g. around I/O or callbacks) and takes it back.
    void unlock() SLUICE_RELEASE() {
        m_.unlock();
        held_ = false;
    }
    void lock() SLUICE_ACQUIRE() {
        m_.lock();
        held_ = true;
    }

    // Blocks on `cv` with the mutex released, and holds it again on return; as with
    // std::condition_variable, wakeups may be spurious, so callers loop on their condition.
    // The analysis sees the mutex held throughout, which is what the code around it sees.
    void wait(std::condition_variable& cv) {
        std::unique_lock<std::mutex> native(m_.m_, std::adopt_lock);
        cv.wait(native);
        native.release();  // still locked: this guard unlocks it
    }
    // wait() with a deadline: std::cv_status::timeout once it has passed.
    template <class Clock, class Duration>
    std::cv_status wait_until(std::condition_variable& cv, const std::chrono::time_point<Clock, Duration>& deadline) {
        std::unique_lock<std::mutex> native(m_.m_, std::adopt_lock);
        const std::cv_status status = cv.wait_until(native, deadline);
        native.release();
        return status;
    }

private:
    mutex& m_;
    bool held_ = true;
};

// std::shared_mutex as a capability: writer_lock holds it exclusively, reader_lock shared.
class SLUICE_CAPABILITY("shared_mutex") shared_mutex {
public:
    void lock() SLUICE_ACQUIRE() { m_.lock(); }
    void unlock() SLUICE_RELEASE() { m_.unlock(); }
    void lock_shared() SLUICE_ACQUIRE_SHARED() { m_.lock_shared(); }
    void unlock_shared() SLUICE_RELEASE_SHARED() { m_.unlock_shared(); }

private:
    std::shared_mutex m_;
};

class SLUICE_SCOPED_CAPABILITY writer_lock {
public:
    explicit writer_lock(shared_mutex& m) SLUICE_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~writer_lock() SLUICE_RELEASE() { m_.unlock(); }
    writer_lock(const writer_lock&) = delete;
    writer_lock& operator=(const writer_lock&) = delete;

private:
    shared_mutex& m_;
};

class SLUICE_SCOPED_CAPABILITY reader_lock {
public:
    explicit reader_lock(shared_mutex& m) SLUICE_ACQUIRE_SHARED(m) : m_(m) { m_.lock_shared(); }
    ~reader_lock() SLUICE_RELEASE() { m_.unlock_shared(); }
    reader_lock(const reader_lock&) = delete;
    reader_lock& operator=(const reader_lock&) = delete;

private:
    shared_mutex& m_;
};

}  // namespace sluice
