#pragma once
// Which sanitizer a test is built under, for GCC and clang alike: GCC defines
// __SANITIZE_ADDRESS__/__SANITIZE_THREAD__, clang 14 only answers
// __has_feature (the CI's sanitizer builds use clang, the Release one GCC).
// Tests with a time or memory bound scale it by kSanitizerSlowdown.

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEBHOOKDB_TEST_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEBHOOKDB_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(WEBHOOKDB_TEST_ASAN)
#define WEBHOOKDB_TEST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(WEBHOOKDB_TEST_TSAN)
#define WEBHOOKDB_TEST_TSAN 1
#endif

namespace webhookdb::test {

// How many times slower a process runs under the sanitizer it was built with
// (measured on the 2-core CI machine, loaded by the parallel suite).
#if defined(WEBHOOKDB_TEST_TSAN)
inline constexpr int kSanitizerSlowdown = 7;
#elif defined(WEBHOOKDB_TEST_ASAN)
inline constexpr int kSanitizerSlowdown = 4;
#else
inline constexpr int kSanitizerSlowdown = 1;
#endif

}  // namespace webhookdb::test
