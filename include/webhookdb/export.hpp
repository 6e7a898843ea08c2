#pragma once
// WEBHOOKDB_EXPORT marks what a shared webhookdb library exports. Components
// listed in WEBHOOKDB_HIDDEN_COMPONENTS (top-level CMakeLists.txt) are built
// with -fvisibility=hidden when BUILD_SHARED_LIBS=ON, so only the classes and
// functions of their public headers carrying it are visible to a consumer:
//   class WEBHOOKDB_EXPORT MemoryJobStore final : public JobStore { ... };
//   WEBHOOKDB_EXPORT std::string_view to_string(QueuedJobState state) noexcept;
// On ELF the same attribute serves the library and its consumers (no
// import/export split as on Windows, which this project does not build for).
// Static builds and components still built with default visibility are
// unaffected: the attribute only restates the default there.

#if defined(__GNUC__) || defined(__clang__)
#define WEBHOOKDB_EXPORT __attribute__((visibility("default")))
#define WEBHOOKDB_NO_EXPORT __attribute__((visibility("hidden")))
#else
#define WEBHOOKDB_EXPORT
#define WEBHOOKDB_NO_EXPORT
#endif
